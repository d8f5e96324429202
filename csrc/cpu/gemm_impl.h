// Blocked matrix product with a SIMD register-tile microkernel, written once
// over the wrappers of simd.h and compiled per instruction-set variant
// (included by isa/variant.h only; AVX-512: 6x32 floats, AVX2+FMA: 6x16,
// generic: 6x2 scalars).
//
// Why our own: the products in LeNet/MLP are small (K = 25..800, M = 6..256)
// and there are thousands of them per second; a BLAS call adds its own
// threading and dispatch overhead to each one, and linking a BLAS from PyPI
// complicates the build. This Goto-style kernel (pack A into MR-row panels,
// B into NR-column panels, keep an MR x NR tile of C in registers) reaches
// most of the machine's FMA peak on these shapes; the figures are in
// benchmarks/RESULTS.md.
#pragma once

#include <cstring>
#include <vector>

#include "act.h"
#include "gemm.h"
#include "simd.h"

namespace minitl {
inline namespace MINITL_ISA {

namespace gemm_detail {

// Cache blocking: a KC x NR panel of B stays in L1, an MC x KC block of A in L2.
constexpr i64 KC = kGemmKBlock;
constexpr i64 MC = 120;   // multiple of MR (6)
constexpr i64 NC = 3072;  // multiple of NR (8 and 16)
constexpr i64 kRowChunk = 2;  // row panels per dynamically scheduled chunk in parallel products

// Where the microkernel finds element (i, k) of its A panel: a packed panel
// (k-major, MR wide), or MR rows of a matrix at arbitrary offsets.
template <class T>
struct PackedA {
    const T* a;
    const T* at(i64 k, int i) const { return a + k * Tile<T>::MR + i; }
};
template <class T>
struct OffsetA {
    const T* row[Tile<T>::MR];
    const T* at(i64 k, int i) const { return row[i] + k; }
};

// Where the microkernel finds row k of its B panel: a packed panel
// (k-major, NR wide), or rows of a matrix at arbitrary offsets (the
// sliding-window view of a padded image, used by the stride-1 conv).
template <class T>
struct PackedB {
    const T* b;
    const T* row(i64 k) const { return b + k * Tile<T>::NR; }
};
template <class T>
struct OffsetB {
    const T* base;
    const i64* off;
    const T* row(i64 k) const { return base + off[k]; }
};

// Where row i of the C tile lives: rows ldc apart, or at arbitrary offsets
// (scatter-adding a product into a padded image, conv's input gradient).
template <class T>
struct PlainC {
    T* c;
    i64 ldc;
    T* row(int i) const { return c + i * ldc; }
};
template <class T>
struct OffsetC {
    T* base;
    const i64* off;
    T* row(int i) const { return base + off[i]; }
};

// act(v) on the 2W values of a tile row. ReLU stays in registers: max(+0, v)
// is `0 > v ? 0 : v` (x86's max returns its second operand when either is
// NaN), exactly act.h's `v < 0 ? 0 : v`, so NaN and -0 pass through; tanh
// and sigmoid go through a small buffer, where the compiler vectorises the
// scalar formulas of act.h, so the values match bias_act_row's bit for bit.
template <class V>
inline void act_pair(typename V::reg& r0, typename V::reg& r1, Act act) {
    using T = typename V::T;
    constexpr int W = V::W;
    if (act == Act::Relu) {
        r0 = V::max(V::zero(), r0);
        r1 = V::max(V::zero(), r1);
        return;
    }
    alignas(64) T t[2 * W];
    V::storeu(t, r0);
    V::storeu(t + W, r1);
    if (act == Act::Tanh)
        for (int j = 0; j < 2 * W; ++j) t[j] = tanh_fast(t[j]);
    else
        for (int j = 0; j < 2 * W; ++j) t[j] = sigmoid(t[j]);
    r0 = V::loadu(t);
    r1 = V::loadu(t + W);
}

// C[0:mr, 0:nr] = epi(alpha * (a_panel . B) + beta * C) with an MR x NR
// register tile; epi.bias points at the tile's first column. Named
// registers, not an array: GCC spills an accumulator array to the stack on
// every iteration once the edge path takes its address.
template <class T, class ARows, class BRows, class CRows = PlainC<T>>
void micro(i64 K, ARows a, BRows b, CRows c, T alpha, T beta, int mr, int nr,
           Epilogue<T> epi = {}) {
    using V = typename VecOf<T>::type;
    using reg = typename V::reg;
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR, W = V::W;
    reg c00 = V::zero(), c01 = V::zero(), c10 = V::zero(), c11 = V::zero();
    reg c20 = V::zero(), c21 = V::zero(), c30 = V::zero(), c31 = V::zero();
    reg c40 = V::zero(), c41 = V::zero(), c50 = V::zero(), c51 = V::zero();
#define MINITL_ROW(i)                       \
    {                                       \
        reg ai = V::bcast(a.at(k, i));      \
        c##i##0 = V::fma(ai, b0, c##i##0);  \
        c##i##1 = V::fma(ai, b1, c##i##1);  \
    }
#pragma GCC unroll 4
    for (i64 k = 0; k < K; ++k) {
        const T* bk = b.row(k);
        const reg b0 = V::loadu(bk), b1 = V::loadu(bk + W);
        MINITL_ROW(0) MINITL_ROW(1) MINITL_ROW(2) MINITL_ROW(3) MINITL_ROW(4) MINITL_ROW(5)
    }
#undef MINITL_ROW
    const reg rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    const reg va = V::set1(alpha), vb = V::set1(beta);
    if (mr == MR && nr == NR) {
        reg bias0 = V::zero(), bias1 = V::zero();
        if (epi.bias) {
            bias0 = V::loadu(epi.bias);
            bias1 = V::loadu(epi.bias + W);
        }
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            T* ci = c.row(i);
            reg r0 = V::mul(va, rows[i][0]), r1 = V::mul(va, rows[i][1]);
            if (beta != T(0)) {
                r0 = V::fma(vb, V::loadu(ci), r0);
                r1 = V::fma(vb, V::loadu(ci + W), r1);
            }
            if (epi.bias) {
                r0 = V::add(r0, bias0);
                r1 = V::add(r1, bias1);
            }
            if (epi.act != Act::None) act_pair<V>(r0, r1, epi.act);
            V::storeu(ci, r0);
            V::storeu(ci + W, r1);
        }
        return;
    }
    alignas(64) T tmp[MR * NR];
    for (int i = 0; i < MR; ++i) {
        V::storeu(tmp + i * NR, rows[i][0]);
        V::storeu(tmp + i * NR + W, rows[i][1]);
    }
    for (int i = 0; i < mr; ++i) {
        T* ci = c.row(i);
        for (int j = 0; j < nr; ++j) {
            T v = alpha * tmp[i * NR + j];
            ci[j] = beta != T(0) ? v + beta * ci[j] : v;
        }
        if (epi.any()) bias_act_row(ci, nr, epi.bias, epi.act);
    }
}

// Pack an mc x kc block of A into MR-row panels, k-major inside a panel,
// zero-padding the last panel so the microkernel never branches on edges.
template <class T>
void pack_a(i64 mc, i64 kc, const T* A, i64 rs, i64 cs, T* out) {
    constexpr int MR = Tile<T>::MR;
    for (i64 i0 = 0; i0 < mc; i0 += MR) {
        const int m = static_cast<int>(std::min<i64>(MR, mc - i0));
        const T* a = A + i0 * rs;
        if (m == MR && rs == 1) {  // A stored transposed: panel columns are contiguous
            for (i64 k = 0; k < kc; ++k)
                for (int i = 0; i < MR; ++i) out[k * MR + i] = a[k * cs + i];
        } else {
            for (int i = 0; i < MR; ++i) {
                if (i < m) {
                    const T* ai = a + i * rs;
                    for (i64 k = 0; k < kc; ++k) out[k * MR + i] = ai[k * cs];
                } else {
                    for (i64 k = 0; k < kc; ++k) out[k * MR + i] = T(0);
                }
            }
        }
        out += MR * kc;
    }
}

// Pack a kc x nc block of B into NR-column panels, k-major inside a panel.
template <class T>
void pack_b(i64 kc, i64 nc, const T* B, i64 rs, i64 cs, T* out) {
    constexpr int NR = Tile<T>::NR;
    for (i64 j0 = 0; j0 < nc; j0 += NR) {
        const int n = static_cast<int>(std::min<i64>(NR, nc - j0));
        const T* b = B + j0 * cs;
        if (n == NR && cs == 1) {  // row-major B: each k is one contiguous copy
            for (i64 k = 0; k < kc; ++k) std::memcpy(out + k * NR, b + k * rs, NR * sizeof(T));
        } else if (n == NR) {  // transposed B: read each column contiguously
            for (int j = 0; j < NR; ++j) {
                const T* bj = b + j * cs;
                for (i64 k = 0; k < kc; ++k) out[k * NR + j] = bj[k * rs];
            }
        } else {
            for (i64 k = 0; k < kc; ++k) {
                for (int j = 0; j < n; ++j) out[k * NR + j] = b[k * rs + j * cs];
                for (int j = n; j < NR; ++j) out[k * NR + j] = T(0);
            }
        }
        out += NR * kc;
    }
}

template <class T>
void scale(i64 M, i64 N, T beta, T* C, i64 ldc) {
    for (i64 i = 0; i < M; ++i)
        for (i64 j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

// Block length for a dimension of n split into blocks of at most `cap`:
// balanced (784 -> 4 x 196, not 3 x 256 + 16) and a multiple of `unit`.
inline i64 balanced(i64 n, i64 cap, i64 unit) {
    const i64 blocks = (n + cap - 1) / cap;
    const i64 len = (n + blocks - 1) / blocks;
    return (len + unit - 1) / unit * unit;
}

// Where macro_rows finds the A panels of a block: packed on the fly from a
// strided matrix (into the thread's scratch), or already packed in full by
// pack_a_full, where the panel of rows [r, r+MR) over k in [pc, pc+kc)
// starts at pa + r*K + pc*MR and is read as is.
template <class T>
struct StridedA {
    const T* A;
    i64 rs, cs;
    // Panels of rows [ic, ic+mc) over [pc, pc+kc); stride between panels.
    const T* panels(i64 ic, i64 mc, i64 pc, i64 kc, i64& stride) const {
        T* pa = scratch<T>(kGemmA, (mc + Tile<T>::MR) * kc);
        pack_a(mc, kc, A + ic * rs + pc * cs, rs, cs, pa);
        stride = Tile<T>::MR * kc;
        return pa;
    }
};
template <class T>
struct PrepackedA {
    const T* pa;
    i64 K;
    const T* panels(i64 ic, i64, i64 pc, i64, i64& stride) const {
        stride = Tile<T>::MR * K;
        return pa + ic * K + pc * Tile<T>::MR;  // ic is a multiple of MR
    }
};

// Multiply the packed kc x nc block of B (pb, columns from jc) by rows
// [i0, i1) of A over k in [pc, pc+kc), mcb rows of A at a time.
template <class T, class ASrc>
void macro_rows(const ASrc& a, i64 i0, i64 i1, i64 pc, i64 kc, i64 jc, i64 nc, i64 mcb, T alpha,
                const T* pb, T beta, T* C, i64 ldc, Epilogue<T> epi) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    for (i64 ic = i0; ic < i1; ic += mcb) {
        const i64 mc = std::min(mcb, i1 - ic);
        i64 stride;
        const T* pa = a.panels(ic, mc, pc, kc, stride);
        for (i64 jr = 0; jr < nc; jr += NR) {
            const int nr = static_cast<int>(std::min<i64>(NR, nc - jr));
            Epilogue<T> e = epi;
            if (e.bias) e.bias += jc + jr;
            for (i64 ir = 0; ir < mc; ir += MR) {
                const int mr = static_cast<int>(std::min<i64>(MR, mc - ir));
                micro<T>(kc, PackedA<T>{pa + (ir / MR) * stride}, PackedB<T>{pb + jr * kc},
                         PlainC<T>{C + (ic + ir) * ldc + jc + jr, ldc}, alpha, beta, mr, nr, e);
            }
        }
    }
}

template <class T, class ASrc>
void gemm_serial(const ASrc& a, i64 M, i64 N, i64 K, T alpha, const T* B, i64 rsB, i64 csB,
                 T beta, T* C, i64 ldc, Epilogue<T> epi) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    const i64 kcb = balanced(K, KC, 1), mcb = balanced(M, MC, MR), ncb = std::min(N, NC);
    T* pb = scratch<T>(kGemmB, (ncb + NR) * kcb);
    for (i64 jc = 0; jc < N; jc += ncb) {
        const i64 nc = std::min(ncb, N - jc);
        for (i64 pc = 0; pc < K; pc += kcb) {
            const i64 kc = std::min(kcb, K - pc);
            pack_b(kc, nc, B + pc * rsB + jc * csB, rsB, csB, pb);
            // The epilogue belongs to the last k block only, when C is complete.
            macro_rows(a, 0, M, pc, kc, jc, nc, mcb, alpha, pb, pc == 0 ? beta : T(1), C, ldc,
                       pc + kc >= K ? epi : Epilogue<T>{});
        }
    }
}

// Threads share each packed block of B (packed cooperatively, one barrier),
// then split the rows of C; with too few rows they split B's panels instead.
// Every element of C is computed by the same sequence of microkernel calls
// whatever the thread count (tiles and k blocks do not depend on it), so
// results are bit-identical for any number of threads.
template <class T, class ASrc>
void gemm_parallel(int nt, const ASrc& a, i64 M, i64 N, i64 K, T alpha, const T* B, i64 rsB,
                   i64 csB, T beta, T* C, i64 ldc, Epilogue<T> epi) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    const i64 kcb = balanced(K, KC, 1), ncb = std::min(N, NC);
    T* pb = scratch<T>(kGemmB, (ncb + NR) * kcb);  // the calling thread's, shared by the team
    const i64 row_units = (M + MR - 1) / MR;
    const bool by_rows = row_units >= 2 * nt;  // else too few rows: split B's panels
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const int t = thread_id(), team = team_size();
        i64 lo, hi;
        for (i64 jc = 0; jc < N; jc += ncb) {
            const i64 nc = std::min(ncb, N - jc);
            const i64 panels = (nc + NR - 1) / NR;
            for (i64 pc = 0; pc < K; pc += kcb) {
                const i64 kc = std::min(kcb, K - pc);
                const T beta_k = pc == 0 ? beta : T(1);
                const Epilogue<T> epi_k = pc + kc >= K ? epi : Epilogue<T>{};
                split_range(panels, team, t, lo, hi);
                if (hi > lo)
                    pack_b(kc, std::min(nc, hi * NR) - lo * NR, B + pc * rsB + (jc + lo * NR) * csB,
                           rsB, csB, pb + lo * NR * kc);
#ifdef _OPENMP
#pragma omp barrier
#endif
                // Compute in small chunks handed out dynamically: on a shared
                // machine a preempted thread then delays one chunk, not half.
                if (by_rows) {
                    const i64 chunks = (row_units + kRowChunk - 1) / kRowChunk;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1) nowait
#endif
                    for (i64 ch = 0; ch < chunks; ++ch) {
                        const i64 i0 = ch * kRowChunk * MR, i1 = std::min(M, (ch + 1) * kRowChunk * MR);
                        macro_rows(a, i0, i1, pc, kc, jc, nc, kRowChunk * MR, alpha, pb, beta_k, C,
                                   ldc, epi_k);
                    }
                } else {
                    const i64 j0 = lo * NR, j1 = std::min(nc, hi * NR);
                    if (j1 > j0)
                        macro_rows(a, 0, M, pc, kc, jc + j0, j1 - j0, balanced(M, MC, MR), alpha,
                                   pb + j0 * kc, beta_k, C, ldc, epi_k);
                }
#ifdef _OPENMP
#pragma omp barrier
#endif
            }
        }
    }
}

template <class T, class ASrc>
void gemm_any(const ASrc& a, i64 M, i64 N, i64 K, T alpha, const T* B, i64 rsB, i64 csB, T beta,
              T* C, i64 ldc, bool parallel, Epilogue<T> epi) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == T(0)) {
        scale(M, N, beta, C, ldc);
        if (epi.any())
            for (i64 i = 0; i < M; ++i) bias_act_row(C + i * ldc, N, epi.bias, epi.act);
        return;
    }
    const int nt = parallel ? threads_for(double(M) * N * K, 1 << 16) : 1;
    if (nt <= 1)
        gemm_serial(a, M, N, K, alpha, B, rsB, csB, beta, C, ldc, epi);
    else
        gemm_parallel(nt, a, M, N, K, alpha, B, rsB, csB, beta, C, ldc, epi);
}

}  // namespace gemm_detail

template <class T>
void gemm(i64 M, i64 N, i64 K, T alpha, const T* A, i64 rsA, i64 csA, const T* B, i64 rsB,
          i64 csB, T beta, T* C, i64 ldc, bool parallel, Epilogue<T> epi) {
    gemm_detail::gemm_any(gemm_detail::StridedA<T>{A, rsA, csA}, M, N, K, alpha, B, rsB, csB, beta,
                          C, ldc, parallel, epi);
}

template <class T>
void gemm_packed_a(i64 M, i64 N, i64 K, const T* pa, const T* B, i64 rsB, i64 csB, T beta, T* C,
                   i64 ldc, bool parallel, Epilogue<T> epi) {
    gemm_detail::gemm_any(gemm_detail::PrepackedA<T>{pa, K}, M, N, K, T(1), B, rsB, csB, beta, C,
                          ldc, parallel, epi);
}

template <class T>
i64 packed_a_size(i64 M, i64 K) {
    constexpr int MR = Tile<T>::MR;
    return (M + MR - 1) / MR * MR * K;
}

template <class T>
void pack_a_full(i64 M, i64 K, const T* A, i64 rsA, i64 csA, T* out) {
    gemm_detail::pack_a(M, K, A, rsA, csA, out);
}

template <class T>
void gemm_offset_b(i64 M, i64 N, i64 K, const T* pa, const T* base, const i64* off, T* C,
                   i64 ldc) {
    using namespace gemm_detail;
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    // Row panel outer: its K x MR slice of A stays in L1 across the tiles.
    for (i64 i0 = 0; i0 < M; i0 += MR) {
        const int mr = static_cast<int>(std::min<i64>(MR, M - i0));
        for (i64 j0 = 0; j0 < N; j0 += NR) {
            const int nr = static_cast<int>(std::min<i64>(NR, N - j0));
            micro<T>(K, PackedA<T>{pa + i0 * K}, OffsetB<T>{base + j0, off},
                     PlainC<T>{C + i0 * ldc + j0, ldc}, T(1), T(0), mr, nr);
        }
    }
}

template <class T>
i64 packed_b_size(i64 K, i64 N) {
    constexpr int NR = Tile<T>::NR;
    return (N + NR - 1) / NR * NR * K;
}

template <class T>
void pack_b_full(i64 K, i64 N, const T* B, i64 rsB, i64 csB, T* out) {
    gemm_detail::pack_b(K, N, B, rsB, csB, out);
}

template <class T>
void gemm_offset_a_sum(i64 M, i64 N, i64 K, i64 nb, const T* const* bases, const i64* off,
                       const T* const* pbs, T beta, T* C, i64 ldc) {
    using namespace gemm_detail;
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    for (i64 i0 = 0; i0 < M; i0 += MR) {
        const int mr = static_cast<int>(std::min<i64>(MR, M - i0));
        for (i64 j0 = 0; j0 < N; j0 += NR) {
            const int nr = static_cast<int>(std::min<i64>(NR, N - j0));
            for (i64 s = 0; s < nb; ++s) {
                OffsetA<T> a;
                for (int i = 0; i < MR; ++i) a.row[i] = bases[s] + off[i0 + std::min(i, mr - 1)];
                micro<T>(K, a, PackedB<T>{pbs[s] + j0 * K}, PlainC<T>{C + i0 * ldc + j0, ldc}, T(1),
                         s == 0 ? beta : T(1), mr, nr);
            }
        }
    }
}

template <class T>
void gemm_offset_a(i64 M, i64 N, i64 K, const T* base, const i64* off, const T* pb, T beta, T* C,
                   i64 ldc) {
    gemm_offset_a_sum<T>(M, N, K, 1, &base, off, &pb, beta, C, ldc);
}

template <class T>
void gemm_scatter_add(i64 M, i64 N, i64 K, const T* pa, const T* B, i64 ldb, T* base,
                      const i64* off) {
    using namespace gemm_detail;
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    std::vector<i64> boff(static_cast<std::size_t>(K));
    for (i64 k = 0; k < K; ++k) boff[k] = k * ldb;
    for (i64 i0 = 0; i0 < M; i0 += MR) {
        const int mr = static_cast<int>(std::min<i64>(MR, M - i0));
        for (i64 j0 = 0; j0 < N; j0 += NR) {
            const int nr = static_cast<int>(std::min<i64>(NR, N - j0));
            micro<T>(K, PackedA<T>{pa + i0 * K}, OffsetB<T>{B + j0, boff.data()},
                     OffsetC<T>{base + j0, off + i0}, T(1), T(1), mr, nr);
        }
    }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
