// Blocked matrix product with an AVX2/FMA register-tile microkernel.
//
// Why our own: the products in LeNet/MLP are small (K = 25..800, M = 6..256)
// and there are thousands of them per second; a BLAS call adds its own
// threading and dispatch overhead to each one, and linking a BLAS from PyPI
// complicates the build. This Goto-style kernel (pack A into MR-row panels,
// B into NR-column panels, keep an MR x NR tile of C in registers) reaches
// most of the machine's FMA peak on these shapes; the figures are in
// benchmarks/RESULTS.md.
#include "gemm.h"

#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MINITL_AVX2 1
#endif

namespace minitl {

namespace {

// Cache blocking: a KC x NR panel of B stays in L1, an MC x KC block of A in L2.
constexpr i64 KC = 256;
constexpr i64 MC = 120;   // multiple of MR (6)
constexpr i64 NC = 3072;  // multiple of NR (8 and 16)

#ifdef MINITL_AVX2
struct VF {  // 8 floats
    using T = float;
    using reg = __m256;
    static constexpr int W = 8;
    static reg zero() { return _mm256_setzero_ps(); }
    static reg load(const T* p) { return _mm256_load_ps(p); }
    static reg loadu(const T* p) { return _mm256_loadu_ps(p); }
    static void storeu(T* p, reg v) { _mm256_storeu_ps(p, v); }
    static void store(T* p, reg v) { _mm256_store_ps(p, v); }
    static reg bcast(const T* p) { return _mm256_broadcast_ss(p); }
    static reg set1(T v) { return _mm256_set1_ps(v); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
};
struct VD {  // 4 doubles
    using T = double;
    using reg = __m256d;
    static constexpr int W = 4;
    static reg zero() { return _mm256_setzero_pd(); }
    static reg load(const T* p) { return _mm256_load_pd(p); }
    static reg loadu(const T* p) { return _mm256_loadu_pd(p); }
    static void storeu(T* p, reg v) { _mm256_storeu_pd(p, v); }
    static void store(T* p, reg v) { _mm256_store_pd(p, v); }
    static reg bcast(const T* p) { return _mm256_broadcast_sd(p); }
    static reg set1(T v) { return _mm256_set1_pd(v); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
    static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
};
template <class T> struct VecOf;
template <> struct VecOf<float> { using type = VF; };
template <> struct VecOf<double> { using type = VD; };

template <class T> struct Tile {
    static constexpr int MR = 6;
    static constexpr int NR = 2 * VecOf<T>::type::W;  // 16 floats, 8 doubles
};

// C[0:mr, 0:nr] = alpha * (a_panel . b_panel) + beta * C, 12 accumulators.
// Named registers, not an array: GCC spills an accumulator array to the
// stack on every iteration once the edge path takes its address.
template <class T>
void micro(i64 K, const T* __restrict a, const T* __restrict b, T* c, i64 ldc,
           T alpha, T beta, int mr, int nr) {
    using V = typename VecOf<T>::type;
    using reg = typename V::reg;
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR, W = V::W;
    reg c00 = V::zero(), c01 = V::zero(), c10 = V::zero(), c11 = V::zero();
    reg c20 = V::zero(), c21 = V::zero(), c30 = V::zero(), c31 = V::zero();
    reg c40 = V::zero(), c41 = V::zero(), c50 = V::zero(), c51 = V::zero();
#define MINITL_ROW(i)                       \
    {                                       \
        reg ai = V::bcast(a + i);           \
        c##i##0 = V::fma(ai, b0, c##i##0);  \
        c##i##1 = V::fma(ai, b1, c##i##1);  \
    }
#pragma GCC unroll 4
    for (i64 k = 0; k < K; ++k) {
        const reg b0 = V::load(b), b1 = V::load(b + W);
        MINITL_ROW(0) MINITL_ROW(1) MINITL_ROW(2) MINITL_ROW(3) MINITL_ROW(4) MINITL_ROW(5)
        a += MR;
        b += NR;
    }
#undef MINITL_ROW
    const reg rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    const reg va = V::set1(alpha), vb = V::set1(beta);
    if (mr == MR && nr == NR) {
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            T* ci = c + i * ldc;
            reg r0 = V::mul(va, rows[i][0]), r1 = V::mul(va, rows[i][1]);
            if (beta != T(0)) {
                r0 = V::fma(vb, V::loadu(ci), r0);
                r1 = V::fma(vb, V::loadu(ci + W), r1);
            }
            V::storeu(ci, r0);
            V::storeu(ci + W, r1);
        }
        return;
    }
    alignas(64) T tmp[MR * NR];
    for (int i = 0; i < MR; ++i) {
        V::store(tmp + i * NR, rows[i][0]);
        V::store(tmp + i * NR + W, rows[i][1]);
    }
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j) {
            T v = alpha * tmp[i * NR + j];
            c[i * ldc + j] = beta != T(0) ? v + beta * c[i * ldc + j] : v;
        }
}
#else   // portable fallback: plain loops the compiler may vectorise
template <class T> struct Tile {
    static constexpr int MR = 4;
    static constexpr int NR = 8;
};
template <class T>
void micro(i64 K, const T* __restrict a, const T* __restrict b, T* c, i64 ldc,
           T alpha, T beta, int mr, int nr) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    T acc[MR][NR] = {};
    for (i64 k = 0; k < K; ++k, a += MR, b += NR)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j) {
            T v = alpha * acc[i][j];
            c[i * ldc + j] = beta != T(0) ? v + beta * c[i * ldc + j] : v;
        }
}
#endif

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

template <class T>
void gemm_serial(i64 M, i64 N, i64 K, T alpha, const T* A, i64 rsA, i64 csA,
                 const T* B, i64 rsB, i64 csB, T beta, T* C, i64 ldc) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == T(0)) {
        scale(M, N, beta, C, ldc);
        return;
    }
    const i64 kcmax = std::min(K, KC);
    const i64 ncmax = std::min(N, NC);
    const i64 mcmax = std::min(M, MC);
    T* pa = scratch<T>(kGemmA, (mcmax + MR) * kcmax);
    T* pb = scratch<T>(kGemmB, (ncmax + NR) * kcmax);
    for (i64 jc = 0; jc < N; jc += NC) {
        const i64 nc = std::min(NC, N - jc);
        for (i64 pc = 0; pc < K; pc += KC) {
            const i64 kc = std::min(KC, K - pc);
            const T beta_k = pc == 0 ? beta : T(1);
            pack_b(kc, nc, B + pc * rsB + jc * csB, rsB, csB, pb);
            for (i64 ic = 0; ic < M; ic += MC) {
                const i64 mc = std::min(MC, M - ic);
                pack_a(mc, kc, A + ic * rsA + pc * csA, rsA, csA, pa);
                for (i64 jr = 0; jr < nc; jr += NR) {
                    const int nr = static_cast<int>(std::min<i64>(NR, nc - jr));
                    for (i64 ir = 0; ir < mc; ir += MR) {
                        const int mr = static_cast<int>(std::min<i64>(MR, mc - ir));
                        micro<T>(kc, pa + ir * kc, pb + jr * kc,
                                 C + (ic + ir) * ldc + jc + jr, ldc, alpha, beta_k, mr, nr);
                    }
                }
            }
        }
    }
}

}  // namespace

template <class T>
void gemm(i64 M, i64 N, i64 K, T alpha, const T* A, i64 rsA, i64 csA,
          const T* B, i64 rsB, i64 csB, T beta, T* C, i64 ldc, bool parallel) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    const int nt = parallel ? threads_for(double(M) * N * K, 1 << 16) : 1;
    if (nt <= 1) {
        gemm_serial(M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, ldc);
        return;
    }
    // Split the output along its longer side, in whole register tiles, so
    // every thread packs only its own share of that operand.
    const bool by_cols = N / NR >= M / MR;
    const i64 units = by_cols ? (N + NR - 1) / NR : (M + MR - 1) / MR;
    const int parts = static_cast<int>(std::min<i64>(nt, units));
#ifdef _OPENMP
#pragma omp parallel num_threads(parts)
#endif
    {
        i64 lo, hi;
        split_range(units, team_size(), thread_id(), lo, hi);
        if (by_cols) {
            const i64 j0 = lo * NR, j1 = std::min(N, hi * NR);
            if (j1 > j0)
                gemm_serial(M, j1 - j0, K, alpha, A, rsA, csA, B + j0 * csB, rsB, csB,
                            beta, C + j0, ldc);
        } else {
            const i64 i0 = lo * MR, i1 = std::min(M, hi * MR);
            if (i1 > i0)
                gemm_serial(i1 - i0, N, K, alpha, A + i0 * rsA, rsA, csA, B, rsB, csB,
                            beta, C + i0 * ldc, ldc);
        }
    }
}

template void gemm<float>(i64, i64, i64, float, const float*, i64, i64, const float*, i64,
                          i64, float, float*, i64, bool);
template void gemm<double>(i64, i64, i64, double, const double*, i64, i64, const double*,
                           i64, i64, double, double*, i64, bool);

const char* gemm_kernel_name() {
#ifdef MINITL_AVX2
    return "own AVX2+FMA 6x16";
#else
    return "own generic 4x8";
#endif
}

}  // namespace minitl
