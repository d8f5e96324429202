// A CPU stand-in for <cuda_runtime.h>: enough of CUDA to run minitl's kernels
// on the host, one block at a time, each CUDA thread a fiber (ucontext) that
// yields at __syncthreads() and inside warp shuffles, so barriers have their
// real meaning (a divergent barrier is reported as a fault, not ignored).
// Only for testing the kernels' logic without a GPU: tests/test_kernels_cuda.py
// builds it with csrc/cuda/emu/build.py; it is never part of the installed module.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static  // blocks run one at a time, so statics act as shared memory
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

typedef int cudaError_t;
typedef void* cudaStream_t;
typedef void* cudaGraph_t;
typedef void* cudaGraphNode_t;
// The codes CUDA uses for the failures the emulator models.
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidDevice = 101,
       cudaErrorIllegalState = 401, cudaErrorIllegalAddress = 700, cudaErrorNotSupported = 801,
       cudaErrorStreamCaptureUnsupported = 900 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrComputeCapabilityMajor,
                      cudaDevAttrComputeCapabilityMinor };
enum cudaStreamCaptureMode { cudaStreamCaptureModeRelaxed };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone, cudaStreamCaptureStatusActive };
enum cudaGraphNodeType { cudaGraphNodeTypeKernel, cudaGraphNodeTypeMemcpy,
                         cudaGraphNodeTypeMemset, cudaGraphNodeTypeEmpty };

namespace emu {
extern int g_sms;    // what cudaDeviceGetAttribute reports as the SM count
// CUDA's per-thread last-error slot: set by a failed launch *and* by a failed
// runtime call, read and cleared by cudaGetLastError, as on the GPU.
extern int g_error;
// A fault inside a kernel (an illegal address on the GPU): asynchronous, so
// the launch itself succeeds and the next synchronisation reports it.
extern int g_pending;
extern int g_device, g_device_count;  // the current device; how many there are
extern unsigned g_max_grid_y;         // CUDA's 65535 (lowered by tests)
bool capturing(cudaStream_t s);
void set_capturing(cudaStream_t s, bool on);
inline cudaError_t fail(cudaError_t e) { g_error = e; return e; }
extern std::vector<double> g_shfl[2];     // shuffle slots, one per thread
extern std::vector<unsigned char> g_parity;  // which bank each thread uses next
void launch(dim3 grid, dim3 block, const std::function<void()>& body);
void wait_block();  // __syncthreads
void wait_warp();   // the implicit warp barrier of a shuffle
inline unsigned tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
}  // namespace emu

inline void __syncthreads() { emu::wait_block(); }

// Two slot banks used alternately: one warp barrier per shuffle suffices,
// since a lane can only reuse a bank after every lane has left it.
template <typename T>
T __shfl_xor_sync(unsigned, T v, int off) {
  const unsigned t = emu::tid();
  std::vector<double>& slots = emu::g_shfl[emu::g_parity[t] ^= 1];
  slots[t] = static_cast<double>(v);
  emu::wait_warp();
  return static_cast<T>(slots[(t & ~31u) | ((t % 32) ^ static_cast<unsigned>(off))]);
}

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }

inline cudaError_t cudaGetLastError() { int e = emu::g_error; emu::g_error = 0; return e; }
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (emulated)";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state (emulated)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (emulated)";
    case cudaErrorNotSupported: return "operation not supported (emulated)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (emulated)";
    default: return "emulated kernel fault";
  }
}
inline cudaError_t cudaGetDevice(int* d) { *d = emu::g_device; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu::g_device_count) return emu::fail(cudaErrorInvalidDevice);
  emu::g_device = d;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMultiProcessorCount ? emu::g_sms
       : a == cudaDevAttrComputeCapabilityMajor ? 9 : 0;
  return cudaSuccess;
}
// Kernels still run while "capturing" (the emulator has no graphs), but the
// capture state is kept so that what a capture forbids can fail as it would.
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (emu::capturing(s)) return emu::fail(cudaErrorIllegalState);
  emu::set_capturing(s, true);
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  *g = nullptr;
  if (!emu::capturing(s)) return emu::fail(cudaErrorIllegalState);
  emu::set_capturing(s, false);
  return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* st) {
  *st = emu::capturing(s) ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
// Kernels ran at launch; what is left to wait for is a pending fault.
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (emu::capturing(s)) return emu::fail(cudaErrorStreamCaptureUnsupported);
  if (emu::g_pending != cudaSuccess) {
    const int e = emu::g_pending;
    emu::g_pending = cudaSuccess;
    return emu::fail(e);
  }
  return cudaSuccess;
}
inline cudaError_t cudaGraphGetNodes(cudaGraph_t, cudaGraphNode_t*, size_t* n) { *n = 0; return cudaSuccess; }
inline cudaError_t cudaGraphNodeGetType(cudaGraphNode_t, cudaGraphNodeType* t) {
  *t = cudaGraphNodeTypeEmpty; return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t) { return cudaSuccess; }
