#pragma once

// Thin SIMD wrappers so each kernel is written once for float and double.
// Which registers a translation unit gets is chosen by the variant it
// belongs to (isa/*.cpp defines MINITL_SIMD_AVX512 or MINITL_SIMD_AVX2
// before including anything), never by the compiler flags alone: the
// generic variant and the baseline code stay plain C++ (W = 1) even in a
// -march=native build. MINITL_AVX2 says 256-bit AVX2 intrinsics may be used
// directly (true in the AVX-512 variant as well).
#include <cstdint>

#include "common.h"

#if defined(MINITL_SIMD_AVX512)
#if !(defined(__AVX2__) && defined(__FMA__))
#error "the AVX-512 variant needs at least -mavx2 -mfma"
#endif
#if !defined(__AVX512F__) && !defined(MINITL_EMULATE_AVX512)
#error "the AVX-512 variant needs -mavx512f (or MINITL_EMULATE_AVX512 for a test build)"
#endif
#include <immintrin.h>
#define MINITL_AVX2 1
#elif defined(MINITL_SIMD_AVX2)
#if !(defined(__AVX2__) && defined(__FMA__))
#error "the AVX2 variant needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#define MINITL_AVX2 1
#endif

namespace minitl {
inline namespace MINITL_ISA {

#ifdef MINITL_AVX2
struct VF8 {  // 8 floats
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
    // a > b ? a : b per lane (b when either is NaN), as the scalar ReLU is written.
    static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
    static T hsum(reg v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};
struct VD4 {  // 4 doubles
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
    static reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
    static T hsum(reg v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};
#endif

#if defined(MINITL_SIMD_AVX512) && !defined(MINITL_EMULATE_AVX512)
struct VF16 {  // 16 floats
    using T = float;
    using reg = __m512;
    static constexpr int W = 16;
    static reg zero() { return _mm512_setzero_ps(); }
    static reg load(const T* p) { return _mm512_load_ps(p); }
    static reg loadu(const T* p) { return _mm512_loadu_ps(p); }
    static void storeu(T* p, reg v) { _mm512_storeu_ps(p, v); }
    static void store(T* p, reg v) { _mm512_store_ps(p, v); }
    static reg bcast(const T* p) { return _mm512_set1_ps(*p); }  // becomes an embedded {1to16} broadcast
    static reg set1(T v) { return _mm512_set1_ps(v); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
    // Halves, then the AVX2 reduction: a fixed order, so results are reproducible.
    static T hsum(reg v) {
        return VF8::hsum(_mm256_add_ps(_mm512_castps512_ps256(v),
                                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
};
struct VD8 {  // 8 doubles
    using T = double;
    using reg = __m512d;
    static constexpr int W = 8;
    static reg zero() { return _mm512_setzero_pd(); }
    static reg load(const T* p) { return _mm512_load_pd(p); }
    static reg loadu(const T* p) { return _mm512_loadu_pd(p); }
    static void storeu(T* p, reg v) { _mm512_storeu_pd(p, v); }
    static void store(T* p, reg v) { _mm512_store_pd(p, v); }
    static reg bcast(const T* p) { return _mm512_set1_pd(*p); }
    static reg set1(T v) { return _mm512_set1_pd(v); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
    static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
    static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
    static reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
    static T hsum(reg v) {
        return VD4::hsum(_mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1)));
    }
};
#elif defined(MINITL_SIMD_AVX512)
// Test build (MINITL_EMULATE_AVX512): the AVX-512 variant's register width
// and tiles, each 512-bit register a pair of AVX2 registers, so machines
// without AVX-512 run the very kernel code (tiles, edges, padding) that the
// real variant runs; only these wrappers differ.
template <class H>
struct Pair {
    using T = typename H::T;
    struct reg {
        typename H::reg lo, hi;
    };
    static constexpr int W = 2 * H::W;
    static reg zero() { return {H::zero(), H::zero()}; }
    static reg load(const T* p) { return {H::load(p), H::load(p + H::W)}; }
    static reg loadu(const T* p) { return {H::loadu(p), H::loadu(p + H::W)}; }
    static void storeu(T* p, reg v) { H::storeu(p, v.lo); H::storeu(p + H::W, v.hi); }
    static void store(T* p, reg v) { H::store(p, v.lo); H::store(p + H::W, v.hi); }
    static reg bcast(const T* p) { return {H::bcast(p), H::bcast(p)}; }
    static reg set1(T v) { return {H::set1(v), H::set1(v)}; }
    static reg fma(reg a, reg b, reg c) { return {H::fma(a.lo, b.lo, c.lo), H::fma(a.hi, b.hi, c.hi)}; }
    static reg mul(reg a, reg b) { return {H::mul(a.lo, b.lo), H::mul(a.hi, b.hi)}; }
    static reg add(reg a, reg b) { return {H::add(a.lo, b.lo), H::add(a.hi, b.hi)}; }
    static reg max(reg a, reg b) { return {H::max(a.lo, b.lo), H::max(a.hi, b.hi)}; }
    static T hsum(reg v) { return H::hsum(H::add(v.lo, v.hi)); }
};
using VF16 = Pair<VF8>;
using VD8 = Pair<VD4>;
#endif

#if defined(MINITL_SIMD_AVX512)
template <class T> struct VecOf;
template <> struct VecOf<float> { using type = VF16; };
template <> struct VecOf<double> { using type = VD8; };
#elif defined(MINITL_SIMD_AVX2)
template <class T> struct VecOf;
template <> struct VecOf<float> { using type = VF8; };
template <> struct VecOf<double> { using type = VD4; };
#else
template <class TT>
struct VS {  // one scalar per "register": portable C++, the compiler may vectorise around it
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
    static reg max(reg a, reg b) { return a > b ? a : b; }
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

// Register tile of the matrix-product microkernel: MR rows x (2 registers)
// columns: 6 x 32 floats (AVX-512), 6 x 16 (AVX2), 6 x 2 (generic); halve
// the columns for double. 12 accumulators + 2 B registers + 1 broadcast fit
// AVX2's 16 registers; AVX-512 keeps the same row count because the conv
// products have M = 6 (LeNet conv1) or 16 output channels, where taller
// tiles would multiply padding rows.
template <class T> struct Tile {
    static constexpr int MR = 6;
    static constexpr int NR = 2 * VecOf<T>::type::W;
};

}  // inline namespace MINITL_ISA
}  // namespace minitl
