// Max-pool over one plane, shared by max_pool2d and the fused conv2d+pool.
#pragma once

#include "common.h"

namespace minitl {

// y[oh, ow] = max over the (kh x kw) window at (oh*sh, ow*sw) of plane x (H x W);
// idx gets the flat index ih*W + iw of the first maximum in row-major
// window order (NumPy's argmax rule, so ties match the reference).
template <class T, class I>
inline void max_pool_plane(const T* __restrict x, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw,
                           i64 OH, i64 OW, T* __restrict y, I* __restrict idx) {
    (void)H;
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2) {
        for (i64 oh = 0; oh < OH; ++oh) {
            const T* r0 = x + 2 * oh * W;
            const T* r1 = r0 + W;
            for (i64 ow = 0; ow < OW; ++ow) {
                const i64 c = 2 * ow;
                T best = r0[c];
                i64 at = 2 * oh * W + c;
                if (r0[c + 1] > best) { best = r0[c + 1]; at = 2 * oh * W + c + 1; }
                if (r1[c] > best) { best = r1[c]; at = (2 * oh + 1) * W + c; }
                if (r1[c + 1] > best) { best = r1[c + 1]; at = (2 * oh + 1) * W + c + 1; }
                y[oh * OW + ow] = best;
                idx[oh * OW + ow] = static_cast<I>(at);
            }
        }
        return;
    }
    for (i64 oh = 0; oh < OH; ++oh)
        for (i64 ow = 0; ow < OW; ++ow) {
            const i64 h0 = oh * sh, w0 = ow * sw;
            T best = x[h0 * W + w0];
            i64 at = h0 * W + w0;
            for (i64 i = 0; i < kh; ++i)
                for (i64 j = 0; j < kw; ++j) {
                    const i64 k = (h0 + i) * W + w0 + j;
                    if (x[k] > best) { best = x[k]; at = k; }
                }
            y[oh * OW + ow] = best;
            idx[oh * OW + ow] = static_cast<I>(at);
        }
}

}  // namespace minitl
