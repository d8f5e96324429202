// conv2d and the fused conv2d + pool, the compute: the epilogues and
// gradient-grid writers that wrap the drivers of conv.h. Compiled per
// instruction-set variant (isa/variant.h); conv.cpp and conv_pool.cpp check
// the arguments and call these through the variant table.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "act.h"
#include "conv.h"
#include "isa.h"
#include "pool.h"

namespace minitl {
inline namespace MINITL_ISA {

// y = act(conv2d(x, w) + b), NCHW; bias and activation applied while each
// sample's output is hot.
template <class T>
void conv_forward_impl(const ConvGeom& g, const T* x, const T* w, const T* b, Act act, T* y) {
    const i64 P = g.P();
    conv_forward_core<T>(g, x, w, [&](i64 n, const T* z, i64 zplane, i64 zrow) {
        for (i64 o = 0; o < g.O; ++o)
            for (i64 h = 0; h < g.OH; ++h)
                bias_act_copy(y + (n * g.O + o) * P + h * g.OW, z + o * zplane + h * zrow, g.OW,
                              b ? b[o] : T(0), act);
    });
}

template <class T>
void conv_backward_impl(const ConvGeom& g, const T* gy, const T* x, const T* w, const T* y, Act act,
                        T* dx, T* dw, T* db) {
    const i64 P = g.P();
    // Sample n's gradient through the activation, onto the core's grid.
    auto gz = [&](i64 n, T* dst, i64 zplane, i64 zrow) {
        for (i64 o = 0; o < g.O; ++o)
            for (i64 h = 0; h < g.OH; ++h) {
                const i64 at = (n * g.O + o) * P + h * g.OW;
                act_grad(dst + o * zplane + h * zrow, gy + at, y ? y + at : nullptr, g.OW, act);
            }
    };
    conv_backward_core<T>(g, x, w, gz, dx, dw, db);
}

// Fused conv2d + bias + activation + non-overlapping max-pool: pools the
// pre-activation z while it is in cache, then applies bias and activation to
// the pooled values only (see conv_pool.cpp for why that is exact).
template <class T>
void conv_pool_forward_impl(const ConvGeom& g, const PoolDims& d, const T* x, const T* w, const T* b,
                            Act act, T* y, std::int32_t* idx) {
    const i64 Q = d.PH * d.PW;
    conv_forward_core<T>(g, x, w, [&](i64 n, const T* z, i64 zplane, i64 zrow) {
        for (i64 o = 0; o < g.O; ++o) {
            T* yo = y + (n * g.O + o) * Q;
            max_pool_plane(z + o * zplane, zrow, d.kh, d.kw, d.kh, d.kw, d.PH, d.PW, yo,
                           idx + (n * g.O + o) * Q, g.OW);
            bias_act_span(yo, Q, b ? b[o] : T(0), act);
        }
    });
}

// Returns false when an index lies outside the conv output plane (skipped).
template <class T>
bool conv_pool_backward_impl(const ConvGeom& g, const PoolDims& d, const T* gyp, const T* x, const T* w,
                             const T* yp, const void* ixp, bool i32, Act act, T* dx, T* dw, T* db) {
    const i64 P = g.P(), Q = d.PH * d.PW;
    if (act == Act::None) yp = nullptr;
    std::atomic<bool> bad{false};
    // Sample n's conv-output gradient: zero except at each window's argmax,
    // where it is gy * act'(y). Scattered into a compact plane by flat
    // index, then copied row by row onto the core's grid. Everything the
    // loop reads is copied into locals first (through the lambda's
    // references the compiler reloaded them for every element).
    auto gz = [=, &bad](i64 n, T* dst, i64 zplane, i64 zrow) {
        const i64 OH = g.OH, OW = g.OW, O = g.O;
        T* flat = scratch<T>(kTmp2, P);
        bool oob = false;
        for (i64 o = 0; o < O; ++o) {
            const i64 off = (n * O + o) * Q;
            const T* gq = gyp + off;
            const T* yq = yp ? yp + off : nullptr;
            std::memset(flat, 0, P * sizeof(T));
            auto scatter = [&](auto a, auto* ix) {
                for (i64 q = 0; q < Q; ++q) {
                    const i64 at = static_cast<i64>(ix[q]);
                    if (at < 0 || at >= P) { oob = true; continue; }
                    flat[at] += decltype(a)::value == Act::None
                                    ? gq[q] : gq[q] * act_slope_t<decltype(a)::value>(yq[q]);
                }
            };
            with_act(act, [&](auto a) {
                if (i32) scatter(a, static_cast<const std::int32_t*>(ixp) + off);
                else scatter(a, static_cast<const std::int64_t*>(ixp) + off);
            });
            T* plane = dst + o * zplane;
            for (i64 h = 0; h < OH; ++h) std::memcpy(plane + h * zrow, flat + h * OW, OW * sizeof(T));
        }
        if (oob) bad.store(true, std::memory_order_relaxed);
    };
    conv_backward_core<T>(g, x, w, gz, dx, dw, db);
    return !bad.load();
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
