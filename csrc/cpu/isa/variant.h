// One instruction-set variant of the hot kernels (see isa.h): included once
// by each of isa/generic.cpp, isa/avx2.cpp and isa/avx512.cpp, which are
// compiled with their own flags (setup.py) and define, before any include,
// MINITL_ISA (the variant's namespace) and MINITL_SIMD_* (its registers).
// MINITL_VARIANT(pointer, name, gemm) then defines the variant's table.
#pragma once

#include "conv_impl.h"
#include "gemm_impl.h"
#include "isa.h"
#include "linear_impl.h"

namespace minitl {
inline namespace MINITL_ISA {

// CPU features this translation unit's code may contain: what the compiler
// flags enabled, read back from the compiler's own macros, so a variant can
// never be selected on a CPU that lacks an instruction its code was allowed
// to use (a -march=native build included).
constexpr unsigned kRequires = 0u
#if defined(__AVX2__)
                               | kAVX2
#endif
#if defined(__FMA__)
                               | kFMA
#endif
#if defined(__AVX512F__)
                               | kAVX512F
#endif
#if defined(__AVX512DQ__)
                               | kAVX512DQ
#endif
#if defined(__AVX512BW__)
                               | kAVX512BW
#endif
#if defined(__AVX512VL__)
                               | kAVX512VL
#endif
    ;

#if defined(MINITL_EMULATE_AVX512)
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

template <class T>
void gemm_entry(i64 M, i64 N, i64 K, T alpha, const T* A, i64 rsA, i64 csA, const T* B, i64 rsB,
                i64 csB, T beta, T* C, i64 ldc, bool parallel) {
    gemm<T>(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, ldc, parallel);
}

template <class T>
constexpr Ops<T> variant_ops() {
    return Ops<T>{&gemm_entry<T>,        &linear_forward_impl<T>,    &linear_backward_impl<T>,
                  &conv_forward_impl<T>, &conv_backward_impl<T>,     &conv_pool_forward_impl<T>,
                  &conv_pool_backward_impl<T>};
}

}  // inline namespace MINITL_ISA
}  // namespace minitl

// The variant's table: constant-initialised (no code runs to build it).
#define MINITL_VARIANT(pointer, name, gemm_name)                                              \
    namespace minitl {                                                                        \
    inline namespace MINITL_ISA {                                                             \
    constexpr Kernels kTable{name, gemm_name, kRequires, kEmulated, variant_ops<float>(),     \
                             variant_ops<double>()};                                          \
    }                                                                                         \
    const Kernels* const pointer = &kTable; /* external: declared extern in isa.h */         \
    }
