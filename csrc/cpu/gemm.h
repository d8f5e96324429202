// Our own blocked SIMD matrix product (see gemm_impl.h for the why). Compiled
// once per instruction-set variant (isa.h); the declarations below belong to
// the variant including them.
#pragma once

#include "common.h"

namespace minitl {
inline namespace MINITL_ISA {

// What the last store of a product adds on top of alpha * A.B + beta * C:
// bias[j] per output column, then an activation. The linear layer's forward
// is then one pass over y instead of a product and a second sweep (and a
// second parallel region) for bias and activation.
template <class T>
struct Epilogue {
    const T* bias = nullptr;  // bias[j] for column j of C; null: none
    Act act = Act::None;
    bool any() const { return bias != nullptr || act != Act::None; }
};

// The longest inner dimension a product sums in one block. Up to it, each
// element of C is the full dot product rounded once and then added to
// beta * C (so C + A.B with beta = 1 equals adding a separate A.B into C,
// bit for bit); past it, the blocks' partial sums are added into C one by one.
constexpr i64 kGemmKBlock = 256;

// C (M x N, row stride ldc) = epi(alpha * A (M x K) * B (K x N) + beta * C).
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
          T beta, T* C, i64 ldc, bool parallel = true, Epilogue<T> epi = {});

// Pack all of A (M x K) into the microkernel's MR-row panels, once, for
// gemm_offset_b and gemm_packed_a; `out` holds packed_a_size<T>(M, K)
// elements: panel p (rows p*MR ..) at out + p*MR*K, element (i, k) of the
// panel at [k*MR + i], rows past M zero.
template <class T>
i64 packed_a_size(i64 M, i64 K);
template <class T>
void pack_a_full(i64 M, i64 K, const T* A, i64 rsA, i64 csA, T* out);

// gemm with A already packed by pack_a_full (or written in that layout by a
// caller that had to touch A anyway), alpha = 1: the packing pass is skipped.
template <class T>
void gemm_packed_a(i64 M, i64 N, i64 K, const T* pa, const T* B, i64 rsB, i64 csB, T beta, T* C,
                   i64 ldc, bool parallel = true, Epilogue<T> epi = {});

// C (M x N) = A . B, A packed by pack_a_full, where row k of B starts at
// base + off[k] and is read contiguously (no packing). Reads up to N rounded
// up to the register tile (Tile<T>::NR) past each row start, so the caller
// pads its buffer; writes only the N valid columns.
template <class T>
void gemm_offset_b(i64 M, i64 N, i64 K, const T* pa, const T* base, const i64* off, T* C,
                   i64 ldc);

// Pack all of B (K x N) into NR-column panels, once, for gemm_offset_a.
template <class T>
i64 packed_b_size(i64 K, i64 N);
template <class T>
void pack_b_full(i64 K, i64 N, const T* B, i64 rsB, i64 csB, T* out);

// C (M x N) = A . B + beta * C, B packed by pack_b_full, where row i of A
// starts at base + off[i] and is read contiguously along k (no packing).
template <class T>
void gemm_offset_a(i64 M, i64 N, i64 K, const T* base, const i64* off, const T* pb, T beta, T* C,
                   i64 ldc);

// The nb products A_s . B_s (A_s's rows at bases[s] + off[i], B_s packed at
// pbs[s]) summed into C: C = beta * C + A_0 . B_0, then C += A_s . B_s in
// order s = 1, 2, ...: bit for bit nb calls of gemm_offset_a, but each
// register tile of C takes all nb products while it is in L1, instead of all
// of C streaming through the caches once per product.
template <class T>
void gemm_offset_a_sum(i64 M, i64 N, i64 K, i64 nb, const T* const* bases, const i64* off,
                       const T* const* pbs, T beta, T* C, i64 ldc);

// base[off[i] + j] += (A . B)(i, j) for i < M, j < N: A (M x K) packed by
// pack_a_full, B (K x N) with row stride ldb read in place (rows padded to
// the register tile). Rows are added one after another, so overlapping
// destinations (an image's taps) accumulate correctly.
template <class T>
void gemm_scatter_add(i64 M, i64 N, i64 K, const T* pa, const T* B, i64 ldb, T* base,
                      const i64* off);

}  // inline namespace MINITL_ISA
}  // namespace minitl
