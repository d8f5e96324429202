// The AVX-512 variant of the hot kernels (isa.h): 512-bit registers, a 6x32
// float tile. setup.py compiles this file alone with -mavx512f -mavx512dq
// -mavx512bw -mavx512vl (x86-64-v4's AVX-512 subset) plus AVX2/FMA, and the
// dispatcher selects it only where the CPU (and the OS, via XCR0) has all of
// them. With MINITL_EMULATE_AVX512=1 setup.py instead builds it from AVX2
// registers in pairs, so the variant's tiles and edges can be tested on a
// machine without AVX-512 (build_info says so; never for a release build).
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's own avx512fintrin.h trips -Wuninitialized through its
// _mm512_undefined_*() placeholders (GCC bug 105593); the pragmas precede
// every include so they cover the header's lines, where the warning points.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__AVX512F__) && defined(__AVX512DQ__) && \
    defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX2__) && defined(__FMA__)
#define MINITL_ISA avx512
#define MINITL_SIMD_AVX512 1
#include "variant.h"

MINITL_VARIANT(variant_avx512, "avx512", "own AVX-512 6x32")
#elif (defined(__x86_64__) || defined(_M_X64)) && defined(MINITL_EMULATE_AVX512) && \
    defined(__AVX2__) && defined(__FMA__)
#define MINITL_ISA avx512
#define MINITL_SIMD_AVX512 1
#include "variant.h"

MINITL_VARIANT(variant_avx512, "avx512", "own AVX-512 6x32 (emulated with AVX2 pairs: test build)")
#else
// Not x86-64, or the compiler was not given (or does not take) the AVX-512
// flags: this build has no AVX-512 variant.
#include "isa.h"
const minitl::Kernels* const minitl::variant_avx512 = nullptr;  // external linkage: declared extern in isa.h
#endif
