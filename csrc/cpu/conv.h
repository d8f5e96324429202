// Convolution drivers shared by conv2d and the fused conv2d+pool, forward
// and backward, NCHW.
//
// Stride 1 (LeNet, most nets) takes the padded-grid path of conv_s1.h: no
// im2col, the GEMM microkernel reads the padded image in place. Other
// strides (the ResNets' 3x3 and 1x1 stride-2 convs) run the same products
// on the input's polyphase split (conv_strided.h). im2col
// ((C*kh*kw) x (OH*OW) per sample, with col2im for dx) remains where that
// grid wastes most (4x4 outputs of a 3x3 stride-2 conv), for the weight
// gradient of 1x1 strided convs, and for the weight gradient of an input
// holding NaN or Inf, where the grids' junk columns would spread it.
//
// Samples are spread over threads (dynamic schedule: a preempted thread on
// a shared machine does not hold the others up); weight gradients go to one
// accumulator per fixed chunk of samples, summed in order, so results do not
// depend on the thread count.
#pragma once

#include <cstring>
#include <vector>

#include "common.h"
#include "conv_s1.h"
#include "conv_strided.h"
#include "gemm.h"
#include "isa.h"

namespace minitl {
inline namespace MINITL_ISA {

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

// Samples whose weight gradients share one accumulator in conv backward.
constexpr i64 kChunk = 4;

// Whether a strided conv's phase grid of Qr positions per sample (junk
// columns and tile rounding included) wastes so much on its P real output
// pixels that im2col + GEMM (+ col2im) is cheaper: layer4's 3x3 stride-2
// conv has 16 output pixels on a 32-long grid. Measured on the ResNet-18
// shapes (benchmarks/RESULTS.md); at 8x8 outputs and larger the grid wins.
inline bool grid_wastes(i64 Qr, i64 P) { return 2 * Qr > 3 * P; }

// Threads for a per-sample loop over N samples of `work` multiply-adds.
inline int sample_threads(double work, i64 N) {
    return static_cast<int>(std::min<i64>(threads_for(work, 1 << 16), std::max<i64>(N, 1)));
}

// Stride-1 convs take the padded-grid path of conv_s1.h; other strides
// the phase buffer of conv_strided.h. For every sample, z = conv(x[n], w)
// (O planes, row stride zrow, plane stride zplane) is computed on one thread, then
// epilogue(n, z, zplane, zrow) writes the output from it while it is hot
// (bias, activation, pooling).
template <class T, class Epilogue>
void conv_forward_core(const ConvGeom& g, const T* x, const T* w, Epilogue epilogue) {
    const i64 K = g.K(), xs = g.C * g.H * g.W;
    const int nt = sample_threads(g.macs(), g.N);
    if (g.sh == 1 && g.sw == 1) {
        const Slide s(g.C, g.H, g.W, g.ph, g.pw, g.KH, g.KW, Tile<T>::NR);
        const std::vector<i64> off = s.offsets();
        std::vector<T> pa(static_cast<std::size_t>(packed_a_size<T>(g.O, K)));
        pack_a_full<T>(g.O, K, w, K, 1, pa.data());
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 2)
#endif
        for (i64 n = 0; n < g.N; ++n) {
            T* xpad = scratch<T>(kCols, s.buf);
            const T* xn = x + n * xs;
            s.pad(xpad, [&](i64 c, i64 h, T* dst) {
                std::memcpy(dst, xn + (c * g.H + h) * g.W, g.W * sizeof(T));
            });
            T* z = scratch<T>(kTmp2, g.O * s.Qr);
            slide_product(s, g.O, pa.data(), off.data(), xpad, z);
            epilogue(n, static_cast<const T*>(z), s.Qr, s.Wp);
        }
        return;
    }
    // Other strides: the same product on the input's phase buffer
    // (conv_strided.h), or im2col where that grid wastes most.
    const Phases s(g, Tile<T>::NR);
    if (grid_wastes(s.Qr, g.P())) {
        const i64 P = g.P();
        auto one = [&](i64 n, bool par) {
            T* cols = scratch<T>(kCols, K * P);
            im2col(g, x + n * xs, cols);
            T* z = scratch<T>(kTmp2, g.O * P);
            gemm<T>(g.O, P, K, T(1), w, K, 1, cols, P, 1, T(0), z, P, par);
            epilogue(n, static_cast<const T*>(z), P, g.OW);
        };
        if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 2)
#endif
            for (i64 n = 0; n < g.N; ++n) one(n, false);
        } else {
            for (i64 n = 0; n < g.N; ++n) one(n, true);  // few samples: thread the GEMM instead
        }
        return;
    }
    const std::vector<i64> off = s.offsets();
    std::vector<T> pa(static_cast<std::size_t>(packed_a_size<T>(g.O, K)));
    pack_a_full<T>(g.O, K, w, K, 1, pa.data());
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 2)
#endif
    for (i64 n = 0; n < g.N; ++n) {
        T* xph = scratch<T>(kCols, s.buf);
        s.fill(xph, x + n * xs);
        T* z = scratch<T>(kTmp2, g.O * s.Qr);
        gemm_offset_b<T>(g.O, s.Qr, K, pa.data(), xph, off.data(), z, s.Qr);
        epilogue(n, static_cast<const T*>(z), s.Qr, s.Wq);
    }
}

// Whether x[0:n] holds no NaN or Inf (x - x is 0 exactly for finite x).
template <class T>
inline bool all_finite(const T* __restrict x, i64 n) {
    T acc = T(0);
    for (i64 i = 0; i < n; ++i) acc += x[i] - x[i];
    return acc == T(0);
}

// dx, dw, db (each may be null) of a convolution. gz(n, dst, plane, row)
// writes sample n's output gradient (O planes of OH x OW, with the given
// plane and row strides) into a zeroed buffer; it runs on the thread that
// uses it, so activation and pooling gradients are fused there.
template <class T, class GZ>
void conv_backward_core(const ConvGeom& g, const T* x, const T* w, GZ gz, T* dx, T* dw, T* db) {
    const i64 P = g.P(), K = g.K(), xs = g.C * g.H * g.W;
    const double work = g.macs() * ((dx ? 1 : 0) + (dw ? 1 : 0)) + double(g.N) * g.O * P;
    const int nt = sample_threads(work, g.N);
    const bool s1 = g.sh == 1 && g.sw == 1;
    // The grid the products run on: stride 1, the padded image (conv_s1.h);
    // other strides, the input's phase buffer (conv_strided.h). Either way
    // tap (c, i, j) of grid position q reads buffer[off(c, i, j) + q].
    const Slide sx(g.C, g.H, g.W, g.ph, g.pw, g.KH, g.KW, Tile<T>::NR);
    const Phases sp(g, Tile<T>::NR);
    const i64 Qr = s1 ? sx.Qr : sp.Qr, grid_row = s1 ? sx.Wp : sp.Wq, grid_buf = s1 ? sx.buf : sp.buf;
    auto tap_off = [&](i64 c, i64 i, i64 j) { return s1 ? c * sx.plane + i * sx.Wp + j : sp.off(c, i, j); };
    auto fill = [&](T* buf, const T* xn) {
        if (!s1) return sp.fill(buf, xn);
        sx.pad(buf, [&](i64 c, i64 h, T* dst) { std::memcpy(dst, xn + (c * g.H + h) * g.W, g.W * sizeof(T)); });
    };
    // dx, three ways:
    // * scatter: dcols (K x Qr) = w^T . gz on the grid, each row added
    //   straight into the buffer's gradient at the tap's offset (col2im
    //   fused into the microkernel's store; inner dimension O), then the
    //   buffer's gradient is read back into dx (the adjoint of fill);
    // * flipped (stride 1): dx as a stride-1 conv of the padded gradient
    //   with flipped weights (inner dimension O*kh*kw, but it also
    //   multiplies the zero border of the padded gradient; needs padding < kernel);
    // * GEMM + col2im (strided, where the phase grid wastes most).
    // Stride 1 chooses between the first two by estimated cost.
    const Slide sd(g.O, g.OH, g.OW, g.KH - 1 - g.ph, g.KW - 1 - g.pw, g.KH, g.KW, Tile<T>::NR);
    auto up = [](i64 v, i64 m) { return (v + m - 1) / m * m; };
    const double flip_cost = double(up(g.C, Tile<T>::MR)) * g.O * g.KH * g.KW * sd.Qr;
    const double scatter_cost = double(up(K, Tile<T>::MR)) * sx.Qr * g.O * (1.0 + 8.0 / g.O);
    const bool s1dx = s1 && g.ph < g.KH && g.pw < g.KW && flip_cost < scatter_cost;
    // Strided convs whose phase grid wastes most take GEMM + col2im instead.
    const bool col2im_dx = !s1 && grid_wastes(sp.Qr, P);
    std::vector<i64> offs;  // tap offsets in (i, j, c) order: a tile's rows are planes apart
    std::vector<T> pas;     // w^T in that order, packed
    if (dx && !s1dx && !col2im_dx) {
        std::vector<T> wt(static_cast<std::size_t>(K * g.O));
        offs.resize(static_cast<std::size_t>(K));
        for (i64 i = 0, r = 0; i < g.KH; ++i)
            for (i64 j = 0; j < g.KW; ++j)
                for (i64 c = 0; c < g.C; ++c, ++r) {
                    offs[r] = tap_off(c, i, j);
                    for (i64 o = 0; o < g.O; ++o) wt[r * g.O + o] = w[((o * g.C + c) * g.KH + i) * g.KW + j];
                }
        pas.resize(static_cast<std::size_t>(packed_a_size<T>(K, g.O)));
        pack_a_full<T>(K, g.O, wt.data(), g.O, 1, pas.data());
    }
    // Weight gradient by the GEMM microkernel when the output channels fill
    // most of its NR-wide register tile (16 floats with AVX2, 32 with
    // AVX-512, half for double), else, stride 1, by the direct correlation
    // kernel; the GEMM one accumulates dw transposed (K x O).
    // Both grid ways also multiply x at the grid's junk columns (past OW)
    // by a zero gradient, and 0 * NaN is NaN: a dw the reference keeps
    // finite. An input holding NaN or Inf takes im2col + GEMM instead,
    // which reads only the taps of real output pixels (one pass over x decides).
    // The 1x1 strided convs and the wasteful strided grids (grid_wastes)
    // take that per-sample im2col too (measured faster: a 1x1 conv's im2col
    // is the same strided gather as its phase buffer, and the product then
    // reads its inner dimension contiguously without repacking the gradient).
    const bool dw_im2col = !s1 && (g.KH * g.KW == 1 || grid_wastes(sp.Qr, P));
    const bool dw_on_grid = dw && !dw_im2col && all_finite(x, g.N * xs);
    const bool dw_by_gemm = dw_on_grid && (!s1 || g.O * 4 >= Tile<T>::NR * 3);
    std::vector<i64> offx;
    if (dw_by_gemm) offx = s1 ? sx.offsets() : sp.offsets();
    // dw by the GEMM: each sample of a chunk leaves its grid and its packed
    // gradient in the chunk's gather buffer, then gemm_offset_a_sum adds the
    // chunk's products tile by tile, so a tile of dw stays in L1 across the
    // chunk instead of all of dw (O*K: 590 KB for a 128-channel 3x3 conv, more
    // than this L2) streaming through the caches once per sample.
    auto up16 = [](i64 v) { return (v + 15) / 16 * 16; };  // 64-byte aligned float slots
    const i64 pg_at = up16(grid_buf);
    const i64 gather_slot = dw_by_gemm ? pg_at + up16(packed_b_size<T>(Qr, g.O)) : 0;
    std::vector<i64> offd;
    std::vector<T> paf;  // w flipped and transposed to (C, O, KH, KW), packed
    if (dx && s1dx) {
        offd = sd.offsets();
        std::vector<T> wf(static_cast<std::size_t>(g.O * K));
        const i64 KO = g.O * g.KH * g.KW;
        for (i64 o = 0; o < g.O; ++o)
            for (i64 c = 0; c < g.C; ++c)
                for (i64 i = 0; i < g.KH; ++i)
                    for (i64 j = 0; j < g.KW; ++j)
                        wf[c * KO + (o * g.KH + (g.KH - 1 - i)) * g.KW + (g.KW - 1 - j)] =
                            w[((o * g.C + c) * g.KH + i) * g.KW + j];
        paf.resize(static_cast<std::size_t>(packed_a_size<T>(g.C, KO)));
        pack_a_full<T>(g.C, KO, wf.data(), KO, 1, paf.data());
    }
    // One (dw, db) accumulator per chunk of kChunk samples, summed in chunk
    // order at the end: the result does not depend on the thread count or on
    // which thread took which chunk (dynamic scheduling keeps both cores
    // busy when the machine is shared and one thread gets preempted).
    const i64 acc_size = (dw ? g.O * K : 0) + (db ? g.O : 0);
    const i64 chunks = (g.N + kChunk - 1) / kChunk;
    // From the calling thread's scratch (shared with the team): a fresh
    // vector this size would be mmap'ed and page-faulted on every call.
    // Each chunk's accumulator is zeroed by the thread that fills it, while it
    // goes into that thread's cache.
    T* acc = scratch<T>(kAcc, acc_size * std::max<i64>(chunks, 1));

    // gz as compact (O x P) planes for the im2col paths: the grid's rows
    // without their junk columns.
    auto compact = [&](const T* gzn) -> const T* {
        T* c = scratch<T>(kTmp2, g.O * P);
        for (i64 o = 0; o < g.O; ++o)
            for (i64 h = 0; h < g.OH; ++h)
                std::memcpy(c + o * P + h * g.OW, gzn + o * Qr + h * grid_row, g.OW * sizeof(T));
        return c;
    };
    auto one = [&](i64 n, T* acc_t, bool par, T* gather) {
        const T* xn = x + n * xs;
        // The gradient on the grid (rows grid_row apart, planes Qr apart),
        // zero at the junk columns.
        T* gzn = scratch<T>(kGrad, g.O * Qr);
        std::memset(gzn, 0, g.O * Qr * sizeof(T));
        gz(n, gzn, Qr, grid_row);
        if (db) {
            T* dbt = acc_t + (dw ? g.O * K : 0);
            for (i64 o = 0; o < g.O; ++o) dbt[o] += sum_span(gzn + o * Qr, Qr);
        }
        if (dw_by_gemm) {
            // dw^T (K x O) += im2col(xg) (K x Qr) . gz^T (Qr x O), added for the
            // whole chunk after its last sample: the microkernel reads each
            // im2col row in place from the grid xg.
            fill(gather, xn);
            pack_b_full<T>(Qr, g.O, gzn, 1, Qr, gather + pg_at);
        } else if (dw_on_grid) {
            T* xg = scratch<T>(kCols, grid_buf);
            fill(xg, xn);
            dw_accumulate(sx, g.O, static_cast<const T*>(gzn), static_cast<const T*>(xg), acc_t);
        } else if (dw) {
            T* cols = scratch<T>(kCols, K * P);
            im2col(g, xn, cols);
            // dw (O x K) += gz_n (O x P) . cols^T (P x K)
            gemm<T>(g.O, K, P, T(1), compact(gzn), P, 1, cols, 1, P, T(1), acc_t, K, par);
        }
        if (dx && s1dx) {
            T* gpad = scratch<T>(kTmp, sd.buf);
            sd.pad(gpad, [&](i64 o, i64 h, T* dst) {
                std::memcpy(dst, gzn + o * Qr + h * grid_row, g.OW * sizeof(T));
            });
            T* zd = scratch<T>(kTmp2, g.C * sd.Qr);
            slide_product(sd, g.C, paf.data(), offd.data(), gpad, zd);
            T* dxn = dx + n * xs;
            for (i64 c = 0; c < g.C; ++c)
                for (i64 h = 0; h < g.H; ++h)
                    std::memcpy(dxn + (c * g.H + h) * g.W, zd + c * sd.Qr + h * sd.Wp,
                                g.W * sizeof(T));
        } else if (dx && col2im_dx) {
            // dcols (K x P) = w^T (K x O) . gz_n (O x P), scattered back by col2im.
            T* dcols = scratch<T>(kTmp, K * P);
            gemm<T>(K, P, g.O, T(1), w, 1, K, compact(gzn), P, 1, T(0), dcols, P, par);
            col2im(g, dcols, dx + n * xs);
        } else if (dx) {
            T* dg = scratch<T>(kTmp, grid_buf);
            std::memset(dg, 0, grid_buf * sizeof(T));
            gemm_scatter_add<T>(K, Qr, g.O, pas.data(), gzn, Qr, dg, offs.data());
            T* dxn = dx + n * xs;
            if (!s1) {
                sp.gather(static_cast<const T*>(dg), dxn);
            } else {
                for (i64 c = 0; c < g.C; ++c)
                    for (i64 h = 0; h < g.H; ++h)
                        std::memcpy(dxn + (c * g.H + h) * g.W, dg + c * sx.plane + (h + g.ph) * sx.Wp + g.pw,
                                    g.W * sizeof(T));
            }
        }
    };
    const bool par = nt <= 1;  // one thread over samples: let the GEMMs thread instead
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 1)
#endif
    for (i64 ch = 0; ch < chunks; ++ch) {
        T* acc_t = acc + ch * acc_size;
        std::fill(acc_t, acc_t + acc_size, T(0));
        const i64 n0 = ch * kChunk, count = std::min(g.N, n0 + kChunk) - n0;
        T* gather = dw_by_gemm ? scratch<T>(kCols, kChunk * gather_slot) : nullptr;
        for (i64 j = 0; j < count; ++j) one(n0 + j, acc_t, par, gather ? gather + j * gather_slot : nullptr);
        if (dw_by_gemm) {
            const T* grids[kChunk];
            const T* grads[kChunk];
            for (i64 j = 0; j < count; ++j) {
                grids[j] = gather + j * gather_slot;
                grads[j] = grids[j] + pg_at;
            }
            gemm_offset_a_sum<T>(K, g.O, Qr, count, grids, offx.data(), grads, T(1), acc_t, g.O);
        }
    }
    // Sum the chunk accumulators into chunk 0's, in chunk order: per element
    // ((0 + a0) + a1) + ..., the same additions in the same order whatever
    // the thread count. Blocks of elements stay in L1 while each chunk's
    // block streams past (reading the chunks element by element instead,
    // chunks strides apart, cost milliseconds on the wide late layers,
    // whose 16 accumulators of O*K weights are ~9 MB), and threads split the blocks.
    const i64 nw = dw ? g.O * K : 0;
    if (chunks == 0) std::fill(acc, acc + acc_size, T(0));  // no samples: zero gradients
    constexpr i64 kSumBlock = 1024;
    const i64 blocks = (acc_size + kSumBlock - 1) / kSumBlock;
    const int nts = static_cast<int>(std::min<i64>(threads_for(double(acc_size) * chunks, 1 << 16),
                                                   std::max<i64>(blocks, 1)));
#ifdef _OPENMP
#pragma omp parallel for num_threads(nts) if (nts > 1) schedule(static)
#endif
    for (i64 b = 0; b < blocks; ++b) {
        const i64 lo = b * kSumBlock, hi = std::min(acc_size, lo + kSumBlock);
        T* __restrict total = acc + lo;
        for (i64 i = 0; i < hi - lo; ++i) total[i] = T(0) + total[i];
        for (i64 ch = 1; ch < chunks; ++ch) {
            const T* __restrict a = acc + ch * acc_size + lo;
            for (i64 i = 0; i < hi - lo; ++i) total[i] += a[i];
        }
    }
    for (i64 i = 0; i < acc_size; ++i) {
        const T sum = acc[i];
        if (i >= nw)
            db[i - nw] = sum;
        else if (dw_by_gemm)
            dw[(i % g.O) * K + i / g.O] = sum;  // from (K x O)
        else
            dw[i] = sum;
    }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
