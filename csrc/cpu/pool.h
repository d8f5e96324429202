// Max-pool over one plane, shared by max_pool2d and the fused conv2d+pool.
#pragma once

#include <type_traits>

#include "common.h"
#include "simd.h"

namespace minitl {
inline namespace MINITL_ISA {

// y[oh, ow] = max over the (kh x kw) window at (oh*sh, ow*sw) of plane x
// (rows W apart: a compact plane, or a row of the conv's padded-width grid);
// idx gets the flat index ih*IW + iw (IW: the plane's true width) of the first maximum in row-major
// window order (NumPy's argmax rule, so ties match the reference). NaN counts
// as the maximum and the first NaN wins, as in np.argmax: a NaN never turns
// into a neighbour's value (see takes()).

// Whether v replaces the window's current best: larger, or the first NaN.
template <class T>
inline bool takes(T v, T best) { return v > best || (v != v && best == best); }
#ifdef MINITL_AVX2
// Eight 2x2/2 windows of two float rows at once: split each row into its
// even and odd columns, then three compare-and-blend steps keep the first
// maximum and its flat index (same tie rule as the scalar loop).
inline void max_pool2x2_8(const float* r0, const float* r1, float* y, std::int32_t* idx,
                          std::int32_t base, std::int32_t iw) {
    auto split = [](const float* r, __m256& even, __m256& odd) {
        const __m256 lo = _mm256_loadu_ps(r), hi = _mm256_loadu_ps(r + 8);
        // shuffle_ps works within 128-bit lanes; permute4x64 puts the halves in order.
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
    };
    __m256 a, b, c, d;
    split(r0, a, b);
    split(r1, c, d);
    const __m256i ia = _mm256_add_epi32(_mm256_set1_epi32(base), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    __m256 best = a;
    __m256i at = ia;
    auto take = [&](__m256 v, std::int32_t shift) {
        // takes(): v > best, or v is NaN while best is not.
        const __m256 m = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                      _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),
                                                    _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
        best = _mm256_blendv_ps(best, v, m);
        at = _mm256_blendv_epi8(at, _mm256_add_epi32(ia, _mm256_set1_epi32(shift)), _mm256_castps_si256(m));
    };
    take(b, 1);
    take(c, iw);
    take(d, iw + 1);
    _mm256_storeu_ps(y, best);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), at);
}
#endif

template <class T, class I>
inline void max_pool_plane(const T* __restrict x, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 OH,
                           i64 OW, T* __restrict y, I* __restrict idx, i64 IW) {
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2) {
        // Branch-free selects: with random data the comparisons are coin
        // flips, and mispredicted branches cost more than the arithmetic.
        for (i64 oh = 0; oh < OH; ++oh) {
            const T* r0 = x + 2 * oh * W;
            const T* r1 = r0 + W;
            const I top = static_cast<I>(2 * oh * IW);
            i64 ow = 0;
#ifdef MINITL_AVX2
            if constexpr (std::is_same_v<T, float> && std::is_same_v<I, std::int32_t>) {
                for (; ow + 8 <= OW; ow += 8)
                    max_pool2x2_8(r0 + 2 * ow, r1 + 2 * ow, y + oh * OW + ow, idx + oh * OW + ow,
                                  static_cast<std::int32_t>(top + 2 * ow), static_cast<std::int32_t>(IW));
                if (ow < OW && OW >= 8) {  // tail: one more block overlapping the last (same values)
                    ow = OW - 8;
                    max_pool2x2_8(r0 + 2 * ow, r1 + 2 * ow, y + oh * OW + ow, idx + oh * OW + ow,
                                  static_cast<std::int32_t>(top + 2 * ow), static_cast<std::int32_t>(IW));
                    ow = OW;
                }
            }
#endif
            for (; ow < OW; ++ow) {
                const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                const I col = static_cast<I>(2 * ow);
                T best = a;
                I at = col;
                const bool mb = takes(b, best);
                best = mb ? b : best;
                at = mb ? static_cast<I>(col + 1) : at;
                const bool mc = takes(c, best);
                best = mc ? c : best;
                at = mc ? static_cast<I>(col + IW) : at;
                const bool md = takes(d, best);
                best = md ? d : best;
                at = md ? static_cast<I>(col + IW + 1) : at;
                y[oh * OW + ow] = best;
                idx[oh * OW + ow] = static_cast<I>(top + at);
            }
        }
        return;
    }
    for (i64 oh = 0; oh < OH; ++oh)
        for (i64 ow = 0; ow < OW; ++ow) {
            const i64 h0 = oh * sh, w0 = ow * sw;
            T best = x[h0 * W + w0];
            i64 at = h0 * IW + w0;
            for (i64 i = 0; i < kh; ++i)
                for (i64 j = 0; j < kw; ++j) {
                    const T v = x[(h0 + i) * W + w0 + j];
                    if (takes(v, best)) { best = v; at = (h0 + i) * IW + w0 + j; }
                }
            y[oh * OW + ow] = best;
            idx[oh * OW + ow] = static_cast<I>(at);
        }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
