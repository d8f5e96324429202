// Thin SIMD wrappers so each kernel is written once for float and double:
// AVX2/FMA registers when the build has them, plain scalars otherwise
// (W = 1), which keeps the portable build correct if slow.
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MINITL_AVX2 1
#endif

namespace minitl {

using i64 = std::int64_t;

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
    static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static T hsum(reg v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
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
    static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
    static T hsum(reg v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};
template <class T> struct VecOf;
template <> struct VecOf<float> { using type = VF; };
template <> struct VecOf<double> { using type = VD; };
#else
template <class TT>
struct VS {  // one scalar per "register"
    using T = TT;
    using reg = TT;
    static constexpr int W = 1;
    static reg zero() { return T(0); }
    static reg load(const T* p) { return *p; }
    static reg loadu(const T* p) { return *p; }
    static void storeu(T* p, reg v) { *p = v; }
    static void store(T* p, reg v) { *p = v; }
    static reg bcast(const T* p) { return *p; }
    static reg set1(T v) { return v; }
    static reg fma(reg a, reg b, reg c) { return a * b + c; }
    static reg mul(reg a, reg b) { return a * b; }
    static reg add(reg a, reg b) { return a + b; }
    static T hsum(reg v) { return v; }
};
template <class T> struct VecOf { using type = VS<T>; };
#endif

// sum(x[0:n]) with four independent vector accumulators: a plain loop is
// one dependent add per element (strict FP order stops the compiler).
template <class T>
inline T sum_span(const T* x, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr int W = V::W;
    typename V::reg a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    i64 i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = V::add(a0, V::loadu(x + i));
        a1 = V::add(a1, V::loadu(x + i + W));
        a2 = V::add(a2, V::loadu(x + i + 2 * W));
        a3 = V::add(a3, V::loadu(x + i + 3 * W));
    }
    for (; i + W <= n; i += W) a0 = V::add(a0, V::loadu(x + i));
    T s = V::hsum(V::add(V::add(a0, a1), V::add(a2, a3)));
    for (; i < n; ++i) s += x[i];
    return s;
}

// Register tile of the matrix-product microkernel: MR rows x (2 registers) columns.
template <class T> struct Tile {
    static constexpr int MR = 6;
    static constexpr int NR = 2 * VecOf<T>::type::W;  // 16 floats, 8 doubles (AVX2)
};

}  // namespace minitl
