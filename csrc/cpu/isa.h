// The interface between the bindings and the instruction-set variants of the
// hot kernels (GEMM, linear, conv, conv+pool), chosen once when _C loads.
//
// Why variants: the module must import on any x86-64 (and build on ARM), so
// its baseline flags assume nothing beyond the architecture's base ISA; the
// kernels that decide the speed are compiled again per instruction set
// (csrc/cpu/isa/{generic,avx2,avx512}.cpp, each with its own compiler
// flags) and reached through one table of function pointers per variant.
// The bindings check arguments and allocate outputs (baseline code), then
// call active_kernels() -- they never call a variant's code directly.
//
// Everything a variant compiles lives in its own namespace, minitl::<isa>
// (an inline namespace, see MINITL_ISA in common.h): two variants' copies of
// the same template or inline function never share a symbol, so the linker
// cannot hand AVX-512 code to a caller on an AVX2-only machine.
#pragma once

#include <cstdint>

#include "common.h"

namespace minitl {

// Geometry of a convolution, NCHW.
struct ConvGeom {
    i64 N, C, H, W, O, KH, KW, sh, sw, ph, pw, OH, OW;
    i64 P() const { return OH * OW; }
    i64 K() const { return C * KH * KW; }
    double macs() const { return double(N) * O * P() * K(); }
};

// Non-overlapping max-pool window after a conv: kernel kh x kw, output PH x PW.
struct PoolDims {
    i64 kh, kw, PH, PW;
};

// The kernels of one variant for one dtype. Pointers are raw and checked:
// the bindings validated shapes, dtypes and strides; outputs are allocated;
// dx/dw/db may be null (not needed).
template <class T>
struct Ops {
    // C (M x N, row stride ldc) = alpha * A . B + beta * C through element strides (gemm.h).
    void (*gemm)(i64 M, i64 N, i64 K, T alpha, const T* A, i64 rsA, i64 csA, const T* B, i64 rsB,
                 i64 csB, T beta, T* C, i64 ldc, bool parallel);
    // y (n x out) = act(x (n x in) . w^T + b), b may be null.
    void (*linear_forward)(i64 n, i64 in, i64 out, const T* x, const T* w, const T* b, Act act, T* y);
    // (dx, dw, db) of linear_forward, null where not wanted; add_dw / add_db:
    // that gradient is added into dw / db instead of overwriting it.
    void (*linear_backward)(i64 n, i64 in, i64 out, const T* gy, const T* x, const T* w, const T* y,
                            Act act, T* dx, T* dw, T* db, bool add_dw, bool add_db);
    void (*conv_forward)(const ConvGeom& g, const T* x, const T* w, const T* b, Act act, T* y);
    void (*conv_backward)(const ConvGeom& g, const T* gy, const T* x, const T* w, const T* y, Act act,
                          T* dx, T* dw, T* db);
    void (*conv_pool_forward)(const ConvGeom& g, const PoolDims& d, const T* x, const T* w, const T* b,
                              Act act, T* y, std::int32_t* idx);
    // Returns false when an index lies outside the conv output plane (those are skipped).
    bool (*conv_pool_backward)(const ConvGeom& g, const PoolDims& d, const T* gy, const T* x, const T* w,
                               const T* y, const void* idx, bool idx32, Act act, T* dx, T* dw, T* db);
};

// CPU features a variant's code may use, as the compiler flags of its
// translation unit enabled them (see kRequires in isa/variant.h).
enum CpuFeature : unsigned {
    kAVX2 = 1u << 0,
    kFMA = 1u << 1,
    kAVX512F = 1u << 2,
    kAVX512DQ = 1u << 3,
    kAVX512BW = 1u << 4,
    kAVX512VL = 1u << 5,
};

struct Kernels {
    const char* name;       // "avx512", "avx2", "generic": what MINITL_CPU_ISA takes
    const char* gemm;       // the GEMM microkernel, e.g. "own AVX2+FMA 6x16"
    unsigned needs;         // CpuFeature bits its code was compiled to use
    bool emulated;          // the AVX-512 layout built from AVX2 (a test build, see setup.py)
    Ops<float> f32;
    Ops<double> f64;
};

// Each variant's table, or nullptr when this build does not contain it (not
// x86-64, or the compiler lacks the flags). Defined in isa/*.cpp as constant
// data, not functions: the dispatcher reads them on any CPU, and reading a
// pointer cannot hit an instruction the CPU lacks.
extern const Kernels* const variant_generic;
extern const Kernels* const variant_avx2;
extern const Kernels* const variant_avx512;

// The variant in use (set when _C loads; see isa.cpp for the rules).
const Kernels& active_kernels();

template <class T>
inline const Ops<T>& ops();
template <>
inline const Ops<float>& ops<float>() { return active_kernels().f32; }
template <>
inline const Ops<double>& ops<double>() { return active_kernels().f64; }

}  // namespace minitl
