// Activation epilogues shared by linear and conv: bias + activation forward,
// and the gradient through the activation taken from its output y.
#pragma once

#include <cmath>
#include <cstring>
#include <type_traits>

#include "common.h"

namespace minitl {
inline namespace MINITL_ISA {

// exp(x) for float without a libm call, so loops over it vectorise.
// Cody-Waite range reduction + degree-6 polynomial (Cephes expf): ~1 ulp.
inline float exp_fast(float x0) {
    float x = std::min(88.3762626647949f, std::max(-87.0f, x0));
    float fx = x * 1.44269504088896341f;
    fx = std::floor(fx + 0.5f);
    float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r2 + r + 1.0f;
    std::int32_t e = (static_cast<std::int32_t>(fx) + 127) << 23;
    float scale;
    std::memcpy(&scale, &e, sizeof scale);
    // The clamp above maps NaN to -87 (std::max(-87, NaN) is -87) and the
    // infinities to finite values: give NaN back, +Inf for overflow and 0 for
    // underflow, as std::exp does, or a NaN logit would turn into a finite
    // probability and sigmoid(-Inf) into 1e-38 instead of 0.
    const float r_exp = x0 > 88.7228394f ? HUGE_VALF : p * scale;
    return x0 < -103.972084f ? 0.0f : (x0 == x0 ? r_exp : x0);
}

// tanh for float: odd polynomial near 0 (keeps relative accuracy), else
// 1 - 2/(exp(2x)+1). Both branches are computed so the loop vectorises.
inline float tanh_fast(float x) {
    float ax = std::fabs(x);
    float z = x * x;
    float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z +
                    1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
    float e = exp_fast(2.0f * ax);
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}
inline double tanh_fast(double x) { return std::tanh(x); }

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// max(v, 0) that keeps NaN, as the reference np.maximum(z, 0) does: NaN < 0 is
// false, so NaN passes through (v > 0 ? v : 0 would turn a NaN into 0). One
// compare and a select, so the loops still vectorise.
template <class T>
inline T relu(T v) { return v < T(0) ? T(0) : v; }

// y[0:n] = act(y + bias) with one bias value for the whole span.
template <class T>
inline void bias_act_span(T* __restrict y, i64 n, T bias, Act act) {
    switch (act) {
        case Act::None:
            if (bias != T(0))
                for (i64 i = 0; i < n; ++i) y[i] += bias;
            break;
        case Act::Relu:
            for (i64 i = 0; i < n; ++i) {
                T v = y[i] + bias;
                y[i] = relu(v);
            }
            break;
        case Act::Tanh:
            for (i64 i = 0; i < n; ++i) y[i] = tanh_fast(T(y[i] + bias));
            break;
        case Act::Sigmoid:
            for (i64 i = 0; i < n; ++i) y[i] = sigmoid(T(y[i] + bias));
            break;
    }
}

// dst[0:n] = act(src + bias); dst may equal src.
template <class T>
inline void bias_act_copy(T* dst, const T* src, i64 n, T bias, Act act) {
    switch (act) {
        case Act::None:
            for (i64 i = 0; i < n; ++i) dst[i] = src[i] + bias;
            break;
        case Act::Relu:
            for (i64 i = 0; i < n; ++i) {
                T v = src[i] + bias;
                dst[i] = relu(v);
            }
            break;
        case Act::Tanh:
            for (i64 i = 0; i < n; ++i) dst[i] = tanh_fast(T(src[i] + bias));
            break;
        case Act::Sigmoid:
            for (i64 i = 0; i < n; ++i) dst[i] = sigmoid(T(src[i] + bias));
            break;
    }
}

// y[0:n] = act(y + b[0:n]) with one bias per element (a row of a linear layer).
template <class T>
inline void bias_act_row(T* __restrict y, i64 n, const T* __restrict b, Act act) {
    switch (act) {
        case Act::None:
            if (b)
                for (i64 i = 0; i < n; ++i) y[i] += b[i];
            break;
        case Act::Relu:
            for (i64 i = 0; i < n; ++i) {
                T v = y[i] + (b ? b[i] : T(0));
                y[i] = relu(v);
            }
            break;
        case Act::Tanh:
            for (i64 i = 0; i < n; ++i) y[i] = tanh_fast(T(y[i] + (b ? b[i] : T(0))));
            break;
        case Act::Sigmoid:
            for (i64 i = 0; i < n; ++i) y[i] = sigmoid(T(y[i] + (b ? b[i] : T(0))));
            break;
    }
}

// act'(z) expressed through the output y = act(z).
template <class T>
inline T act_slope(T y, Act act) {
    switch (act) {
        case Act::Relu: return T(y > T(0));  // arithmetic, not a branch on random data
        case Act::Tanh: return T(1) - y * y;
        case Act::Sigmoid: return y * (T(1) - y);
        default: return T(1);
    }
}

// act_slope with the activation fixed at compile time, for hot loops.
template <Act A, class T>
inline T act_slope_t(T y) {
    if constexpr (A == Act::Relu) return T(y > T(0));
    else if constexpr (A == Act::Tanh) return T(1) - y * y;
    else if constexpr (A == Act::Sigmoid) return y * (T(1) - y);
    else return T(1);
}

// Calls f(std::integral_constant<Act, act>) so a loop can be specialised per activation.
template <class F>
inline void with_act(Act act, F f) {
    switch (act) {
        case Act::None: f(std::integral_constant<Act, Act::None>()); break;
        case Act::Relu: f(std::integral_constant<Act, Act::Relu>()); break;
        case Act::Tanh: f(std::integral_constant<Act, Act::Tanh>()); break;
        case Act::Sigmoid: f(std::integral_constant<Act, Act::Sigmoid>()); break;
    }
}

// gz[0:n] = gy * act'(from y). act None copies.
template <class T>
inline void act_grad(T* __restrict gz, const T* __restrict gy, const T* __restrict y, i64 n,
                     Act act) {
    switch (act) {
        case Act::None:
            std::memcpy(gz, gy, n * sizeof(T));
            break;
        case Act::Relu:
            for (i64 i = 0; i < n; ++i) gz[i] = y[i] > T(0) ? gy[i] : T(0);
            break;
        case Act::Tanh:
            for (i64 i = 0; i < n; ++i) gz[i] = gy[i] * (T(1) - y[i] * y[i]);
            break;
        case Act::Sigmoid:
            for (i64 i = 0; i < n; ++i) gz[i] = gy[i] * y[i] * (T(1) - y[i]);
            break;
    }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
