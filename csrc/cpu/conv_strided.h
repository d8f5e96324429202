// Strided convolution without im2col: the padded-width grid of conv_s1.h
// on the polyphase (space-to-depth) split of the input.
//
// With stride (sh, sw), output (oh, ow) under tap (c, i, j) reads
// xpad[c][sh*oh + i][sw*ow + j]. Split xpad into its phases
// (a, b) = (row mod sh, col mod sw), each a plane Hq x Wq with
// phase[c, a, b][u][v] = xpad[c][sh*u + a][sw*v + b]; then the tap reads
// phase[c, i%sh, j%sw][oh + i/sh][ow + j/sw], a stride-1 slide: on a grid
// Wq wide its im2col row is the contiguous slice of the phase buffer at
// off(c, i, j) = phase(c, i%sh, j%sw) * plane + (i/sh) * Wq + j/sw, and the
// GEMM microkernel reads it in place (gemm_offset_b), as for stride 1.
// Every tap is one row, so no multiply-add is wasted on a zero sub-kernel
// tap; only the (KW-1)/sw junk columns per grid row are (1 of 5 at 4x4
// outputs with a 3x3 stride-2 kernel, none for 1x1 stride 2, where the
// single phase is the even rows and columns: a strided gather, then a plain
// product). Only phases some tap reads are built (a < KH, b < KW).
//
// Why not im2col + GEMM (the path before): it writes KH*KW copies of the
// input per sample, the GEMM packs them again, and col2im scatters K*P
// values back; the phase buffer is one copy of the (padded) input. conv.h
// still takes im2col where this grid wastes most (grid_wastes: 4x4 outputs
// of a 3x3 stride-2 conv sit on a 32-long grid) and for the dw of 1x1
// strided convs. Measured on the ResNet-18 shapes in benchmarks/RESULTS.md.
#pragma once

#include <cstring>
#include <vector>

#include "isa.h"

namespace minitl {
inline namespace MINITL_ISA {

// The phase buffer and grid of one sample of a strided conv.
struct Phases {
    i64 C, H, W, sh, sw, ph, pw, KH, KW, OH, OW;
    i64 AH, AW;        // phases built along rows and columns (min(stride, kernel))
    i64 Hq, Wq, plane; // one phase plane; Wq is also the output grid's row stride
    i64 Q, Qr, buf;    // grid positions, rounded to the register tile, buffer size
    Phases(const ConvGeom& g, i64 NR)
        : C(g.C), H(g.H), W(g.W), sh(g.sh), sw(g.sw), ph(g.ph), pw(g.pw), KH(g.KH), KW(g.KW),
          OH(g.OH), OW(g.OW) {
        AH = std::min(sh, KH);
        AW = std::min(sw, KW);
        Hq = OH + (KH - 1) / sh;
        Wq = OW + (KW - 1) / sw;
        plane = Hq * Wq;
        Q = OH * Wq;
        Qr = (Q + NR - 1) / NR * NR;
        buf = C * AH * AW * plane + Qr + Wq + NR;  // reads past the last plane land in zeros
    }
    i64 K() const { return C * KH * KW; }
    i64 off(i64 c, i64 i, i64 j) const {
        return ((c * AH + i % sh) * AW + j % sw) * plane + (i / sh) * Wq + j / sw;
    }
    // off for k = (c, i, j) in weight order.
    std::vector<i64> offsets() const {
        std::vector<i64> o(static_cast<std::size_t>(K()));
        for (i64 c = 0, k = 0; c < C; ++c)
            for (i64 i = 0; i < KH; ++i)
                for (i64 j = 0; j < KW; ++j) o[k++] = off(c, i, j);
        return o;
    }
    // Columns v of phase b whose input column sw*v + b - pw lies in [0, W).
    void cols(i64 b, i64& lo, i64& hi) const {
        const i64 first = pw - b;  // sw*v >= first
        lo = first <= 0 ? 0 : (first + sw - 1) / sw;
        const i64 last = W - 1 + pw - b;  // sw*v <= last
        hi = last < 0 ? 0 : std::min(Wq, last / sw + 1);
        if (hi < lo) hi = lo;
    }
    // The phase buffer of sample x (C x H x W); zero in the padding and tail.
    template <class T>
    void fill(T* __restrict dst, const T* __restrict x) const {
        std::memset(dst, 0, buf * sizeof(T));
        for (i64 c = 0; c < C; ++c)
            for (i64 a = 0; a < AH; ++a)
                for (i64 b = 0; b < AW; ++b) {
                    i64 lo, hi;
                    cols(b, lo, hi);
                    T* p = dst + ((c * AH + a) * AW + b) * plane;
                    for (i64 u = 0; u < Hq; ++u) {
                        const i64 h = sh * u + a - ph;
                        if (h < 0 || h >= H) continue;
                        const T* src = x + (c * H + h) * W + b - pw;
                        T* r = p + u * Wq;
                        if (sw == 1)
                            std::memcpy(r + lo, src + lo, (hi - lo) * sizeof(T));
                        else
                            for (i64 v = lo; v < hi; ++v) r[v] = src[v * sw];
                    }
                }
    }
    // Adjoint of fill: dx (C x H x W) = the phase-buffer gradient d at each
    // input position; positions no phase holds (rows or columns the stride
    // skips) get zero.
    template <class T>
    void gather(const T* __restrict d, T* __restrict dx) const {
        std::memset(dx, 0, C * H * W * sizeof(T));
        for (i64 c = 0; c < C; ++c)
            for (i64 a = 0; a < AH; ++a)
                for (i64 b = 0; b < AW; ++b) {
                    i64 lo, hi;
                    cols(b, lo, hi);
                    const T* p = d + ((c * AH + a) * AW + b) * plane;
                    for (i64 u = 0; u < Hq; ++u) {
                        const i64 h = sh * u + a - ph;
                        if (h < 0 || h >= H) continue;
                        T* dst = dx + (c * H + h) * W + b - pw;
                        const T* r = p + u * Wq;
                        if (sw == 1)
                            std::memcpy(dst + lo, r + lo, (hi - lo) * sizeof(T));
                        else
                            for (i64 v = lo; v < hi; ++v) dst[v * sw] = r[v];
                    }
                }
    }
};

}  // inline namespace MINITL_ISA
}  // namespace minitl
