// Thread count and per-thread scratch memory (declared in common.h).
#include "common.h"

#include <atomic>

namespace minitl {

namespace {

// 0 means "not set yet": the first read takes OpenMP's default, which
// honours OMP_NUM_THREADS.
std::atomic<int> g_threads{0};

struct ScratchSet {
    void* ptr[kNumSlots] = {};
    std::size_t cap[kNumSlots] = {};
    ~ScratchSet() {
        for (void* p : ptr) std::free(p);
    }
};

}  // namespace

int num_threads() {
    int t = g_threads.load(std::memory_order_relaxed);
    if (t > 0) return t;
#ifdef _OPENMP
    t = omp_get_max_threads();
#else
    t = 1;
#endif
    g_threads.store(t, std::memory_order_relaxed);
    return t;
}

void set_num_threads(int n) {
    n = std::max(1, n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    n = 1;
#endif
    g_threads.store(n, std::memory_order_relaxed);
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

void* scratch_bytes(int slot, std::size_t bytes) {
    thread_local ScratchSet set;
    if (bytes > set.cap[slot]) {
        std::free(set.ptr[slot]);
        // Grow by half again so alternating shapes do not reallocate each call;
        // a multiple of 64 as aligned_alloc requires.
        std::size_t cap = ((bytes + bytes / 2) + 63) & ~std::size_t(63);
        set.ptr[slot] = std::aligned_alloc(64, cap);
        if (!set.ptr[slot]) {
            set.cap[slot] = 0;
            throw std::bad_alloc();
        }
        set.cap[slot] = cap;
    }
    return set.ptr[slot];
}

}  // namespace minitl
