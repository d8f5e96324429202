// Stride-1 convolution without im2col: the "padded-width grid" trick.
//
// Pad a sample to Hp x Wp and compute the output on a grid Wp wide (the
// last KW-1 columns of each row are garbage and dropped). Then the input
// value under kernel tap k = (c, i, j) at grid position q is
// xpad[off(k) + q] with off(k) = c*Hp*Wp + i*Wp + j: every row of the
// im2col matrix is a contiguous slice of the padded image, so the matrix
// product reads it in place (gemm_offset_b) and nothing is copied but the
// padding. The garbage columns cost (Wp - OW) / Wp extra multiply-adds,
// far less than building and packing im2col (measured in RESULTS.md).
//
// Backward: dx is the same kernel run on the padded output gradient with
// the weights flipped and transposed; dw correlates the gradient grid with
// the padded input (dw_accumulate, a register-blocked direct kernel).
#pragma once

#include <cstring>
#include <vector>

#include "gemm.h"
#include "simd.h"

namespace minitl {
inline namespace MINITL_ISA {

// A stride-1 conv of C planes H x W, padding (ph, pw), kernel KH x KW, on its padded grid.
struct Slide {
    i64 C, H, W, ph, pw, KH, KW;
    i64 Hp, Wp, plane, OH, OW, Q, Qr, buf;
    Slide(i64 C_, i64 H_, i64 W_, i64 ph_, i64 pw_, i64 KH_, i64 KW_, i64 NR)
        : C(C_), H(H_), W(W_), ph(ph_), pw(pw_), KH(KH_), KW(KW_) {
        Hp = H + 2 * ph;
        Wp = W + 2 * pw;
        plane = Hp * Wp;
        OH = Hp - KH + 1;
        OW = Wp - KW + 1;
        Q = OH * Wp;                    // grid positions with a full output row each
        Qr = (Q + NR - 1) / NR * NR;    // rounded to the register tile
        buf = C * plane + Qr + KW + NR;  // reads past the last plane land in zeros
    }
    i64 K() const { return C * KH * KW; }
    // off[k] for k = (c, i, j) in weight order.
    std::vector<i64> offsets() const {
        std::vector<i64> off(static_cast<std::size_t>(K()));
        for (i64 c = 0, k = 0; c < C; ++c)
            for (i64 i = 0; i < KH; ++i)
                for (i64 j = 0; j < KW; ++j) off[k++] = c * plane + i * Wp + j;
        return off;
    }
    // Fill buf: zero borders and tail, row (c, h) written by row(c, h, dst) (W values).
    template <class T, class RowFn>
    void pad(T* buf_, RowFn row) const {
        std::memset(buf_, 0, buf * sizeof(T));
        for (i64 c = 0; c < C; ++c)
            for (i64 h = 0; h < H; ++h) row(c, h, buf_ + c * plane + (h + ph) * Wp + pw);
    }
};

// z (M x Qr, row stride Qr) = A . im2col(xpad) for packed A (M x K).
template <class T>
inline void slide_product(const Slide& s, i64 M, const T* pa, const i64* off, const T* xpad, T* z) {
    gemm_offset_b<T>(M, s.Qr, s.K(), pa, xpad, off, z, s.Qr);
}

namespace detail {

// out[ob][jb] += sum_q g[ob][q] * x[jb + q] for OB gradient rows and JB taps.
template <class T, int OB, int JB>
void dw_tile(const T* __restrict g, i64 ldg, const T* __restrict x, i64 Qr, T* out, i64 ldo) {
    using V = typename VecOf<T>::type;
    using reg = typename V::reg;
    reg acc[OB][JB];
    for (int a = 0; a < OB; ++a)
        for (int b = 0; b < JB; ++b) acc[a][b] = V::zero();
    for (i64 q = 0; q < Qr; q += V::W) {
        reg gv[OB];
        for (int a = 0; a < OB; ++a) gv[a] = V::loadu(g + a * ldg + q);
        for (int b = 0; b < JB; ++b) {
            const reg xv = V::loadu(x + b + q);
            for (int a = 0; a < OB; ++a) acc[a][b] = V::fma(gv[a], xv, acc[a][b]);
        }
    }
    for (int a = 0; a < OB; ++a)
        for (int b = 0; b < JB; ++b) out[a * ldo + b] += V::hsum(acc[a][b]);
}

template <class T, int OB>
void dw_tile_j(int jb, const T* g, i64 ldg, const T* x, i64 Qr, T* out, i64 ldo) {
    switch (jb) {
        case 1: dw_tile<T, OB, 1>(g, ldg, x, Qr, out, ldo); break;
        case 2: dw_tile<T, OB, 2>(g, ldg, x, Qr, out, ldo); break;
        case 3: dw_tile<T, OB, 3>(g, ldg, x, Qr, out, ldo); break;
        case 4: dw_tile<T, OB, 4>(g, ldg, x, Qr, out, ldo); break;
        default: dw_tile<T, OB, 5>(g, ldg, x, Qr, out, ldo); break;
    }
}

}  // namespace detail

// dw (O x C x KH x KW) += correlation of the gradient grid gz (O x Qr, zero
// outside the valid columns) with the padded input xpad.
template <class T>
void dw_accumulate(const Slide& s, i64 O, const T* gz, const T* xpad, T* dw) {
    const i64 K = s.K();
    // Taps in chunks of at most 5 (2 rows x 5 taps = 10 accumulators + 3 loads fit 16 registers).
    const i64 nchunks = (s.KW + 4) / 5;
    for (i64 o0 = 0; o0 < O; o0 += 2) {
        const int ob = o0 + 1 < O ? 2 : 1;
        const T* g = gz + o0 * s.Qr;
        for (i64 c = 0; c < s.C; ++c)
            for (i64 i = 0; i < s.KH; ++i) {
                const T* xrow = xpad + c * s.plane + i * s.Wp;
                T* out = dw + o0 * K + (c * s.KH + i) * s.KW;
                for (i64 ch = 0, j0 = 0; ch < nchunks; ++ch) {
                    const i64 j1 = (s.KW * (ch + 1)) / nchunks;
                    const int jb = static_cast<int>(j1 - j0);
                    if (ob == 2)
                        detail::dw_tile_j<T, 2>(jb, g, s.Qr, xrow + j0, s.Qr, out + j0, K);
                    else
                        detail::dw_tile_j<T, 1>(jb, g, s.Qr, xrow + j0, s.Qr, out + j0, K);
                    j0 = j1;
                }
            }
    }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
