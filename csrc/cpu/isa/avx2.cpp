// The AVX2+FMA variant of the hot kernels (isa.h): 256-bit registers, a 6x16
// float tile. setup.py compiles this file alone with -mavx2 -mfma; the rest
// of the module assumes only the architecture's baseline.
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__AVX2__) && defined(__FMA__)
#define MINITL_ISA avx2
#define MINITL_SIMD_AVX2 1
#include "variant.h"

MINITL_VARIANT(variant_avx2, "avx2", "own AVX2+FMA 6x16")
#else
// Not x86-64, or the compiler was not given (or does not take) the AVX2
// flags: this build has no AVX2 variant, and the dispatcher never offers it.
#include "isa.h"
const minitl::Kernels* const minitl::variant_avx2 = nullptr;  // external linkage: declared extern in isa.h
#endif
