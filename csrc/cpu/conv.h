// Convolution core shared by conv2d and the fused conv2d+pool: im2col /
// col2im and the per-sample GEMM drivers, forward and backward.
//
// Layout: NCHW. For one sample, the columns matrix is (C*kh*kw) x (OH*OW),
// so y[n] (O x OH*OW) = w (O x C*kh*kw) . cols, already in NCHW order.
// Samples are spread over threads; each thread keeps its own columns and,
// for the weight gradient, its own accumulator, summed at the end.
#pragma once

#include <cstring>
#include <vector>

#include "common.h"
#include "gemm.h"

namespace minitl {

struct ConvGeom {
    i64 N, C, H, W, O, KH, KW, sh, sw, ph, pw, OH, OW;
    i64 P() const { return OH * OW; }
    i64 K() const { return C * KH * KW; }
    // 1x1, stride 1, no padding: the input plane *is* the columns matrix.
    bool direct() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
    double macs() const { return double(N) * O * P() * K(); }
};

// Output positions ow whose input column ow*s + j - p lies inside [0, W).
inline void valid_range(i64 OW, i64 W, i64 s, i64 j, i64 p, i64& lo, i64& hi) {
    i64 first = p - j;  // ow*s >= first
    lo = first <= 0 ? 0 : (first + s - 1) / s;
    i64 last = W - 1 + p - j;  // ow*s <= last
    hi = last < 0 ? 0 : std::min(OW, last / s + 1);
    if (hi < lo) hi = lo;
}

// cols (K x P) from one sample x (C x H x W); zeros where the window is in the padding.
template <class T>
void im2col(const ConvGeom& g, const T* __restrict x, T* __restrict cols) {
    const i64 P = g.P();
    for (i64 c = 0; c < g.C; ++c)
        for (i64 i = 0; i < g.KH; ++i)
            for (i64 j = 0; j < g.KW; ++j) {
                T* row = cols + ((c * g.KH + i) * g.KW + j) * P;
                i64 lo, hi;
                valid_range(g.OW, g.W, g.sw, j, g.pw, lo, hi);
                for (i64 oh = 0; oh < g.OH; ++oh) {
                    T* r = row + oh * g.OW;
                    const i64 ih = oh * g.sh + i - g.ph;
                    if (ih < 0 || ih >= g.H) {
                        std::memset(r, 0, g.OW * sizeof(T));
                        continue;
                    }
                    const T* src = x + (c * g.H + ih) * g.W + j - g.pw;
                    for (i64 ow = 0; ow < lo; ++ow) r[ow] = T(0);
                    if (g.sw == 1)
                        std::memcpy(r + lo, src + lo, (hi - lo) * sizeof(T));
                    else
                        for (i64 ow = lo; ow < hi; ++ow) r[ow] = src[ow * g.sw];
                    for (i64 ow = hi; ow < g.OW; ++ow) r[ow] = T(0);
                }
            }
}

// Adjoint of im2col: dx (C x H x W, zeroed here) += scatter of dcols (K x P).
template <class T>
void col2im(const ConvGeom& g, const T* __restrict dcols, T* __restrict dx) {
    const i64 P = g.P();
    std::memset(dx, 0, g.C * g.H * g.W * sizeof(T));
    for (i64 c = 0; c < g.C; ++c)
        for (i64 i = 0; i < g.KH; ++i)
            for (i64 j = 0; j < g.KW; ++j) {
                const T* row = dcols + ((c * g.KH + i) * g.KW + j) * P;
                i64 lo, hi;
                valid_range(g.OW, g.W, g.sw, j, g.pw, lo, hi);
                for (i64 oh = 0; oh < g.OH; ++oh) {
                    const i64 ih = oh * g.sh + i - g.ph;
                    if (ih < 0 || ih >= g.H) continue;
                    const T* r = row + oh * g.OW;
                    T* dst = dx + (c * g.H + ih) * g.W + j - g.pw;
                    if (g.sw == 1)
                        for (i64 ow = lo; ow < hi; ++ow) dst[ow] += r[ow];
                    else
                        for (i64 ow = lo; ow < hi; ++ow) dst[ow * g.sw] += r[ow];
                }
            }
}

// z[n] (O x P) = w . cols(x[n]) for every sample, then epilogue(n, z_n) on
// the thread that computed it (bias, activation, pooling while z_n is hot).
// `zbuf(n)` says where sample n's product goes.
template <class T, class ZBuf, class Epilogue>
void conv_forward_core(const ConvGeom& g, const T* x, const T* w, ZBuf zbuf, Epilogue epilogue) {
    const i64 P = g.P(), K = g.K(), xs = g.C * g.H * g.W;
    const int nt = std::min<i64>(threads_for(g.macs(), 1 << 16), g.N);
    auto one = [&](i64 n, bool par) {
        const T* cols = x + n * xs;
        if (!g.direct()) {
            T* buf = scratch<T>(kCols, K * P);
            im2col(g, x + n * xs, buf);
            cols = buf;
        }
        T* z = zbuf(n);
        gemm<T>(g.O, P, K, T(1), w, K, 1, cols, P, 1, T(0), z, P, par);
        epilogue(n, z);
    };
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (i64 n = 0; n < g.N; ++n) one(n, false);
    } else {
        for (i64 n = 0; n < g.N; ++n) one(n, true);  // few samples: thread the GEMM instead
    }
}

// dx, dw, db (each may be null) of a convolution whose output gradient for
// sample n is produced by gz(n) -> const T* (O x P), computed on the thread
// that uses it (activation and pooling gradients fused there).
template <class T, class GZ>
void conv_backward_core(const ConvGeom& g, const T* x, const T* w, GZ gz, T* dx, T* dw, T* db) {
    const i64 P = g.P(), K = g.K(), xs = g.C * g.H * g.W;
    const double work = g.macs() * ((dx ? 1 : 0) + (dw ? 1 : 0)) + double(g.N) * g.O * P;
    const int nt = std::min<i64>(threads_for(work, 1 << 16), g.N);
    const bool par_gemm = nt <= 1;
    // One (dw, db) accumulator per thread, summed after the loop.
    const i64 acc_size = (dw ? g.O * K : 0) + (db ? g.O : 0);
    std::vector<T> acc(static_cast<std::size_t>(acc_size * std::max(nt, 1)), T(0));

    auto one = [&](i64 n, T* acc_t) {
        const T* gzn = gz(n);
        if (dw) {
            const T* cols = x + n * xs;
            if (!g.direct()) {
                T* buf = scratch<T>(kCols, K * P);
                im2col(g, x + n * xs, buf);
                cols = buf;
            }
            // dw (O x K) += gz_n (O x P) . cols^T (P x K)
            gemm<T>(g.O, K, P, T(1), gzn, P, 1, cols, 1, P, T(1), acc_t, K, par_gemm);
        }
        if (db) {
            T* dbt = acc_t + (dw ? g.O * K : 0);
            for (i64 o = 0; o < g.O; ++o) {
                const T* r = gzn + o * P;
                T s = T(0);
                for (i64 p = 0; p < P; ++p) s += r[p];
                dbt[o] += s;
            }
        }
        if (dx) {
            // dcols (K x P) = w^T (K x O) . gz_n (O x P), scattered back by col2im.
            if (g.direct()) {
                gemm<T>(K, P, g.O, T(1), w, 1, K, gzn, P, 1, T(0), dx + n * xs, P, par_gemm);
            } else {
                T* dcols = scratch<T>(kTmp, K * P);
                gemm<T>(K, P, g.O, T(1), w, 1, K, gzn, P, 1, T(0), dcols, P, par_gemm);
                col2im(g, dcols, dx + n * xs);
            }
        }
    };
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            const int t = thread_id();
            i64 lo, hi;
            split_range(g.N, team_size(), t, lo, hi);
            for (i64 n = lo; n < hi; ++n) one(n, acc.data() + t * acc_size);
        }
    } else {
        for (i64 n = 0; n < g.N; ++n) one(n, acc.data());
    }
    // Sum the per-thread accumulators into the outputs.
    for (i64 i = 0; i < acc_size; ++i) {
        T s = T(0);
        for (int t = 0; t < std::max(nt, 1); ++t) s += acc[t * acc_size + i];
        if (dw && i < g.O * K)
            dw[i] = s;
        else if (db)
            db[i - (dw ? g.O * K : 0)] = s;
    }
}

}  // namespace minitl
