// Shared plumbing for the CPU kernels: threads, per-thread scratch memory,
// activation enum. No Python here (see array.h for the binding-side checks).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

// Code compiled once per instruction set (the kernel variants, isa.h) lives in
// minitl::MINITL_ISA, an inline namespace: written and called as minitl::...,
// but every variant's copy of an inline function or template gets its own
// symbol. Without it the linker keeps one copy of, say, an AVX2-compiled
// inline helper for every caller, baseline code on an old CPU included.
// Each isa/*.cpp defines MINITL_ISA before any include; the module's other
// translation units (bindings, pooling, loss, optimizers) get "baseline".
#ifndef MINITL_ISA
#define MINITL_ISA baseline
#endif

namespace minitl {

using i64 = std::int64_t;

// ------------------------------------------------------------------ threads
// One process-wide thread count, passed explicitly to every parallel region
// (num_threads clause) so that it also holds for kernels called from Python
// threads other than the one that called set_num_threads.
int num_threads();
void set_num_threads(int n);
bool openmp_enabled();

void* scratch_bytes(int slot, std::size_t bytes);

// --------------------------------------------------------------- activation
enum class Act { None, Relu, Tanh, Sigmoid };

// ------------------------------------------------------------------ scratch
// Per-thread, 64-byte aligned buffers that only grow, so the hot loops never
// call malloc. `slot` names independent buffers used at the same time.
enum Slot : int {
    kGemmA = 0, kGemmB, kCols, kGrad, kTmp, kTmp2, kAcc, kNumSlots
};

inline namespace MINITL_ISA {

// True inside a parallel region: nested kernels then run serially, since
// 2 cores leave nothing to gain from nesting and much to lose.
inline bool in_parallel() {
#ifdef _OPENMP
    return omp_in_parallel() != 0;
#else
    return false;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Threads actually running the current parallel region (1 outside one).
inline int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// Threads worth using for `work` scalar operations: starting a parallel
// region costs a few microseconds, so tiny ops stay on one thread.
inline int threads_for(double work, double per_thread_min = 1 << 15) {
    if (in_parallel()) return 1;
    int t = num_threads();
    int by_work = static_cast<int>(work / per_thread_min);
    return std::max(1, std::min(t, by_work));
}

// Split [0, n) into `parts` contiguous ranges; range `i` is [lo, hi).
inline void split_range(i64 n, int parts, int i, i64& lo, i64& hi) {
    i64 base = n / parts, rem = n % parts;
    lo = i * base + std::min<i64>(i, rem);
    hi = lo + base + (i < rem ? 1 : 0);
}

template <class T>
inline T* scratch(int slot, i64 n) {
    return static_cast<T*>(scratch_bytes(slot, static_cast<std::size_t>(n) * sizeof(T)));
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
