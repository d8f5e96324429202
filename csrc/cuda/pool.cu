// Max and average pooling, forward and backward (no padding, as the
// reference). Backward kernels are gathers, one thread per input element:
// each sums the output gradients of every window that covers it, so
// overlapping windows (stride < kernel) need no atomics, the result is
// deterministic, and every element of dx is written (no memset launch).
#include "common.cuh"

namespace minitl_cuda {
namespace {

// Range of output rows (or columns) whose window [o*s, o*s + k) covers i.
__device__ __forceinline__ void covering(int i, int k, int s, int out, int& lo, int& hi) {
  lo = i < k ? 0 : (i - k) / s + 1;  // first o with o*s + k > i
  hi = min(i / s, out - 1);          // last o with o*s <= i
}

// One thread per output: the window's maximum and its flat index h*W + w.
// Ties keep the first maximum in row-major window order and a NaN wins, as
// numpy's argmax does.
template <typename T>
__global__ void __launch_bounds__(kThreads)
max_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ idx,
                    Geom g) {
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const int P = g.oh * g.ow;
  if (t >= (long long)g.n * g.c * P) return;
  const long long plane = t / P;
  const int p = (int)(t % P), h0 = (p / g.ow) * g.sh, w0 = (p % g.ow) * g.sw;
  const T* xp = x + plane * g.h * g.w;
  int best_i = h0 * g.w + w0;
  T best = xp[best_i];
  for (int i = 0; i < g.kh; ++i) {
    for (int j = 0; j < g.kw; ++j) {
      const int k = (h0 + i) * g.w + w0 + j;
      const T v = xp[k];
      if (v > best || (v != v && best == best)) { best = v; best_i = k; }
    }
  }
  y[t] = best;
  idx[t] = best_i;
}

// dx[h, w] = sum of gy over the covering windows whose argmax is (h, w).
template <typename T>
__global__ void __launch_bounds__(kThreads)
max_pool_bwd_kernel(const T* __restrict__ gy, const long long* __restrict__ idx,
                    T* __restrict__ dx, Geom g) {
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const int HW = g.h * g.w;
  if (t >= (long long)g.n * g.c * HW) return;
  const long long plane = t / HW;
  const int k = (int)(t % HW), h = k / g.w, w = k % g.w;
  int oh_lo, oh_hi, ow_lo, ow_hi;
  covering(h, g.kh, g.sh, g.oh, oh_lo, oh_hi);
  covering(w, g.kw, g.sw, g.ow, ow_lo, ow_hi);
  const long long base = plane * g.oh * g.ow;
  T sum = T(0);
  for (int oh = oh_lo; oh <= oh_hi; ++oh)
    for (int ow = ow_lo; ow <= ow_hi; ++ow) {
      const long long o = base + oh * g.ow + ow;
      if (idx[o] == k) sum += gy[o];
    }
  dx[t] = sum;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
avg_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, Geom g) {
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const int P = g.oh * g.ow;
  if (t >= (long long)g.n * g.c * P) return;
  const long long plane = t / P;
  const int p = (int)(t % P), h0 = (p / g.ow) * g.sh, w0 = (p % g.ow) * g.sw;
  const T* xp = x + plane * g.h * g.w;
  T sum = T(0);
  for (int i = 0; i < g.kh; ++i)
    for (int j = 0; j < g.kw; ++j) sum += xp[(h0 + i) * g.w + w0 + j];
  y[t] = sum / T(g.kh * g.kw);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
avg_pool_bwd_kernel(const T* __restrict__ gy, T* __restrict__ dx, Geom g) {
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const int HW = g.h * g.w;
  if (t >= (long long)g.n * g.c * HW) return;
  const long long plane = t / HW;
  const int k = (int)(t % HW), h = k / g.w, w = k % g.w;
  int oh_lo, oh_hi, ow_lo, ow_hi;
  covering(h, g.kh, g.sh, g.oh, oh_lo, oh_hi);
  covering(w, g.kw, g.sw, g.ow, ow_lo, ow_hi);
  const T* gp = gy + plane * g.oh * g.ow;
  const T area = T(g.kh * g.kw);
  T sum = T(0);  // the reference divides each gradient before summing; so do we
  for (int oh = oh_lo; oh <= oh_hi; ++oh)
    for (int ow = ow_lo; ow <= ow_hi; ++ow) sum += gp[oh * g.ow + ow] / area;
  dx[t] = sum;
}

}  // namespace

void max_pool2d_forward(Ptr x, Ptr y, Ptr idx, const Geom& g, int dtype, Ptr stream,
                        int device) {
  const long long total = (long long)g.n * g.c * g.oh * g.ow;
  if (total == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "max_pool2d_forward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_fwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(x), as_ptr<T>(y), as_ptr<long long>(idx), g);
    check_launch("max_pool2d_forward", as_stream(stream));
  });
}

void max_pool2d_backward(Ptr gy, Ptr idx, Ptr dx, const Geom& g, int dtype, Ptr stream,
                         int device) {
  const long long total = (long long)g.n * g.c * g.h * g.w;
  if (total == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_bwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(gy), as_ptr<const long long>(idx), as_ptr<T>(dx), g);
    check_launch("max_pool2d_backward", as_stream(stream));
  });
}

void avg_pool2d_forward(Ptr x, Ptr y, const Geom& g, int dtype, Ptr stream, int device) {
  const long long total = (long long)g.n * g.c * g.oh * g.ow;
  if (total == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "avg_pool2d_forward", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_fwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(x), as_ptr<T>(y), g);
    check_launch("avg_pool2d_forward", as_stream(stream));
  });
}

void avg_pool2d_backward(Ptr gy, Ptr dx, const Geom& g, int dtype, Ptr stream,
                         int device) {
  const long long total = (long long)g.n * g.c * g.h * g.w;
  if (total == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_bwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(gy), as_ptr<T>(dx), g);
    check_launch("avg_pool2d_backward", as_stream(stream));
  });
}

}  // namespace minitl_cuda
