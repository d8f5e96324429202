// The CPU stand-in's launcher (see cuda_runtime.h here): blocks run one
// after another; a block's threads are fibers switched by a scheduler that
// releases a barrier once every live thread of the block (or warp) waits at
// it. Threads that returned count as arrived, as on the GPU.
//
// Fibers switch with a few lines of assembly on x86-64 (glibc's swapcontext
// makes a signal-mask system call per switch, ~10x slower, and a warp
// reduction switches hundreds of times per thread); elsewhere ucontext.
#include <cstdio>
#include <set>

#include "cuda_runtime.h"

dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace emu {
int g_sms = 4;
int g_error = 0;
int g_pending = 0;
int g_device = 0, g_device_count = 2;
unsigned g_max_grid_y = 65535;
std::vector<double> g_shfl[2];
std::vector<unsigned char> g_parity;

namespace {
std::set<cudaStream_t> g_capturing;
bool g_inject_fault = false;
}  // namespace
bool capturing(cudaStream_t s) { return g_capturing.count(s) != 0; }
void set_capturing(cudaStream_t s, bool on) {
  if (on) g_capturing.insert(s);
  else g_capturing.erase(s);
}

namespace {
enum State { kRun, kWaitBlock, kWaitWarp, kDone };
constexpr size_t kStack = 64 * 1024;
std::vector<std::vector<char>> g_stacks;
std::vector<State> g_state;
const std::function<void()>* g_body = nullptr;
unsigned g_current = 0;
void fiber_main();
}  // namespace
}  // namespace emu

#if defined(__x86_64__)
// emu_switch(save, to): push callee-saved registers, store rsp in *save,
// load rsp = to, pop the other context's registers and return into it.
extern "C" void emu_switch(void** save, void* to);
asm(R"(
  .text
  .p2align 4
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");

namespace emu {
namespace {
void* g_sched_sp = nullptr;
std::vector<void*> g_sp;

extern "C" void emu_fiber_entry() { fiber_main(); }

void fiber_init(unsigned t) {
  // A fresh stack that "returns" into emu_fiber_entry with the ABI's
  // alignment: rsp % 16 == 8 at function entry.
  auto top = reinterpret_cast<uintptr_t>(g_stacks[t].data() + kStack) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                          // fake return address
  *--sp = reinterpret_cast<void*>(&emu_fiber_entry);        // popped by `ret`
  for (int i = 0; i < 6; ++i) *--sp = nullptr;              // rbp rbx r12..r15
  g_sp[t] = sp;
}
void to_fiber(unsigned t) { emu_switch(&g_sched_sp, g_sp[t]); }
void to_scheduler() { emu_switch(&g_sp[g_current], g_sched_sp); }
void fibers_resize(unsigned n) { g_sp.resize(n); }
}  // namespace
}  // namespace emu
#else
#include <ucontext.h>
namespace emu {
namespace {
ucontext_t g_sched;
std::vector<ucontext_t> g_ctx;
void fiber_init(unsigned t) {
  getcontext(&g_ctx[t]);
  g_ctx[t].uc_stack.ss_sp = g_stacks[t].data();
  g_ctx[t].uc_stack.ss_size = kStack;
  g_ctx[t].uc_link = nullptr;
  makecontext(&g_ctx[t], fiber_main, 0);
}
void to_fiber(unsigned t) { swapcontext(&g_sched, &g_ctx[t]); }
void to_scheduler() { swapcontext(&g_ctx[g_current], &g_sched); }
void fibers_resize(unsigned n) { g_ctx.resize(n); }
}  // namespace
}  // namespace emu
#endif

namespace emu {
namespace {
void fiber_main() {
  (*g_body)();
  g_state[g_current] = kDone;
  to_scheduler();  // never resumed
}

void wait(State s) {
  g_state[g_current] = s;
  to_scheduler();
}

void set_thread(unsigned t) {
  g_current = t;
  threadIdx = dim3(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
}

// Run one block to completion; false on a barrier that can never be released.
bool run_block(unsigned n) {
  for (unsigned t = 0; t < n; ++t) {
    fiber_init(t);
    g_state[t] = kRun;
    g_parity[t] = 0;
  }
  for (;;) {
    bool ran = false;
    for (unsigned t = 0; t < n; ++t) {
      if (g_state[t] != kRun) continue;
      set_thread(t);
      to_fiber(t);
      ran = true;
    }
    // Release each warp whose live lanes all wait at the warp barrier, and
    // the block when all its live threads wait at __syncthreads.
    bool all_done = true, all_block = true, released = false;
    for (unsigned w = 0; w * 32 < n; ++w) {
      bool warp_ready = true, any = false;
      for (unsigned t = w * 32; t < std::min(n, w * 32 + 32); ++t) {
        if (g_state[t] == kDone) continue;
        any = true;
        warp_ready = warp_ready && g_state[t] == kWaitWarp;
      }
      if (any && warp_ready) {
        for (unsigned t = w * 32; t < std::min(n, w * 32 + 32); ++t)
          if (g_state[t] == kWaitWarp) g_state[t] = kRun;
        released = true;
      }
    }
    for (unsigned t = 0; t < n; ++t) {
      if (g_state[t] != kDone) all_done = false;
      if (g_state[t] != kDone && g_state[t] != kWaitBlock) all_block = false;
    }
    if (all_done) return true;
    if (all_block && !released) {
      for (unsigned t = 0; t < n; ++t)
        if (g_state[t] == kWaitBlock) g_state[t] = kRun;
      released = true;
    }
    if (!ran && !released) return false;  // divergent barrier: a deadlock on a GPU
  }
}
}  // namespace

void wait_block() { wait(kWaitBlock); }
void wait_warp() { wait(kWaitWarp); }

void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  const unsigned n = block.x * block.y * block.z;
  if (n == 0 || n > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > g_max_grid_y || grid.z > 65535) {
    g_error = cudaErrorInvalidValue;  // what a real launch would reject
    return;
  }
  if (g_inject_fault) {  // the kernel "faults": its launch succeeds, a sync reports it
    g_inject_fault = false;
    g_pending = cudaErrorIllegalAddress;
  }
  blockDim = block;
  gridDim = grid;
  g_body = &body;
  if (g_state.size() < n) {
    fibers_resize(n);
    g_state.resize(n);
    g_parity.resize(n);
    g_stacks.resize(n, std::vector<char>(kStack));
  }
  g_shfl[0].assign(n, 0.0);
  g_shfl[1].assign(n, 0.0);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        if (!run_block(n)) {
          std::fprintf(stderr, "emu: divergent barrier in block (%u,%u,%u)\n", bx, by, bz);
          g_error = cudaErrorInvalidValue;
          return;
        }
      }
}
}  // namespace emu

// Hooks for tests/test_kernels_cuda.py, called through ctypes on the loaded
// module: set what the binding cannot (the current device, a grid limit, a
// fault inside the next kernel) and read the current device back.
extern "C" {
void emu_set_device(int d) { emu::g_device = d; }
int emu_get_device() { return emu::g_device; }
void emu_set_max_grid_y(unsigned v) { emu::g_max_grid_y = v; }
void emu_inject_fault() { emu::g_inject_fault = true; }
void emu_reset() {
  emu::g_error = emu::g_pending = 0;
  emu::g_device = 0;
  emu::g_max_grid_y = 65535;
  emu::g_inject_fault = false;
  emu::g_capturing.clear();
}
}
