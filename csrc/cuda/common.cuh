// Shared pieces of the CUDA kernels: error checks, activations, launch helpers.
//
// Every launcher in this directory follows one pattern: make the arrays'
// device current for the call (DeviceGuard), launch on the caller's stream
// (CuPy's current stream of that device, passed as an integer), then
// check_launch("<kernel>", stream), which turns a launch error into a
// std::runtime_error that pybind11 raises as a Python RuntimeError naming the
// kernel. Nothing here allocates device memory: CuPy owns every buffer.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "minitl_cuda.h"

namespace minitl_cuda {

constexpr int kThreads = 256;  // block size of every kernel here

// Counts launches for the benchmark's "kernels per training step" figure.
void count_launch();

[[noreturn]] inline void raise_cuda(const char* what, cudaError_t err, const char* note = "") {
  throw std::runtime_error(std::string("minitl._C_cuda.") + what + ": " +
                           cudaGetErrorString(err) + note);
}

// Raise if a runtime call (not a launch) failed. A failed call also leaves its
// error in CUDA's last-error slot; clear it first, or the next check_launch
// would read it and blame an innocent kernel (PyTorch's C10_CUDA_CHECK clears
// it the same way).
inline void check_call(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    raise_cuda(what, err);
  }
}

// MINITL_CUDA_SYNC=1 (runtime.cu): a debug mode that synchronizes after every
// launch. A fault *inside* a kernel (an illegal address, say) is asynchronous:
// the launch succeeds and the error surfaces at some later call, blamed on
// whatever ran then. Synchronizing right after the launch names the kernel.
// sync_launches() is declared in minitl_cuda.h (the binding exposes it).
void sync_after_launch(const char* kernel, cudaStream_t stream);

// Raise if the last launch failed to start (a configuration error, or an
// earlier asynchronous fault); in MINITL_CUDA_SYNC=1 mode, also wait for the
// kernel and raise if it faulted.
inline void check_launch(const char* kernel, cudaStream_t stream) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) raise_cuda(kernel, err);
  count_launch();
  if (sync_launches()) sync_after_launch(kernel, stream);
}

// Makes `device` current for one call into this module and restores the
// caller's device afterwards (as c10::cuda::CUDAGuard does). CuPy keeps its
// own notion of the current device, so the Python side passes the arrays'
// device explicitly; leaving it switched would make the caller's later CuPy
// allocations land on that device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_call(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) {
      check_call(cudaSetDevice(device), "cudaSetDevice");
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    // A destructor must not throw; a failed restore must not be blamed on
    // the next kernel either.
    if (switched_ && cudaSetDevice(prev_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

// Number of SMs of the current device, cached per device (sizes the grids).
int sm_count();

inline cudaStream_t as_stream(Ptr s) { return reinterpret_cast<cudaStream_t>(s); }

template <typename T>
inline T* as_ptr(Ptr p) { return reinterpret_cast<T*>(p); }

inline unsigned blocks_for(long long n, int threads = kThreads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

// Precise (not fast-math) device math, overloaded for float and double so
// the kernels can be written once as templates.
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }

// +infinity and a quiet NaN (std::numeric_limits is host-only in device code).
template <typename T> __device__ __forceinline__ T d_inf();
template <> __device__ __forceinline__ float d_inf<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double d_inf<double>() {
  return __longlong_as_double(0x7ff0000000000000LL);
}
template <typename T> __device__ __forceinline__ T d_nan() { return d_inf<T>() - d_inf<T>(); }

// act(z), same semantics as reference.activation_forward (NaN propagates
// through relu, as numpy.maximum does).
template <typename T>
__device__ __forceinline__ T act_forward(T z, int act) {
  switch (act) {
    case kRelu: return z < T(0) ? T(0) : z;
    case kTanh: return d_tanh(z);
    case kSigmoid: return T(1) / (T(1) + d_exp(-z));
    default: return z;
  }
}

// g * act'(z) written with the output y = act(z), as the reference does.
template <typename T>
__device__ __forceinline__ T act_backward(T g, T y, int act) {
  switch (act) {
    case kRelu: return y > T(0) ? g : T(0);
    case kTanh: return g * (T(1) - y * y);
    case kSigmoid: return g * y * (T(1) - y);
    default: return g;
  }
}

// Sum of v over the 32 lanes of a warp (every lane gets the result).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, off);
    v = (o > v || o != o) ? o : v;  // NaN wins, as numpy's max does
  }
  return v;
}

// Call f with the C++ type matching the dtype code sent from Python.
template <typename F>
inline void dispatch_dtype(int dtype, const char* kernel, F&& f) {
  if (dtype == kFloat32) {
    f(float{});
  } else if (dtype == kFloat64) {
    f(double{});
  } else {
    throw std::invalid_argument(std::string("minitl._C_cuda.") + kernel +
                                ": dtype code must be 0 (float32) or 1 (float64)");
  }
}

}  // namespace minitl_cuda
