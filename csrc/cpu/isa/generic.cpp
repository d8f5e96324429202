// The generic variant of the hot kernels (isa.h): plain C++ at the module's
// baseline flags, one scalar per "register". Always built; the fallback on
// x86-64 CPUs without AVX2 and the only variant on other architectures.
#define MINITL_ISA generic
#include "variant.h"

MINITL_VARIANT(variant_generic, "generic", "own portable scalar 6x2")
