// Our own blocked SIMD matrix product (see gemm.cpp for the why).
#pragma once

#include "common.h"

namespace minitl {

// C (M x N, row stride ldc) = alpha * A (M x K) * B (K x N) + beta * C.
//
// A and B are read through element strides, so any transpose or slice is
// free: A(i, k) = A[i * rsA + k * csA], B(k, j) = B[k * rsB + j * csB].
// beta == 0 never reads C (it may hold garbage). `parallel` lets the product
// split its output over threads when big enough; inside a parallel region it
// always runs serially.
template <class T>
void gemm(i64 M, i64 N, i64 K, T alpha,
          const T* A, i64 rsA, i64 csA,
          const T* B, i64 rsB, i64 csB,
          T beta, T* C, i64 ldc, bool parallel = true);

// Which microkernel was compiled in ("avx2+fma 6x16" or "generic").
const char* gemm_kernel_name();

}  // namespace minitl
