// Softmax cross-entropy, fused: one warp per sample computes the row's max,
// log-sum-exp, log-probabilities, the (label-smoothed) loss and the
// probabilities in a single launch; backward is one elementwise launch.
//
// A target outside [0, C) cannot raise from inside a kernel: its loss is
// written as NaN (and its gradient has no "-1" term), so the error surfaces
// in the loss instead of silently reading out of bounds.
#include "common.cuh"

namespace minitl_cuda {
namespace {

constexpr int kRowsPerBlock = kThreads / 32;

template <typename T>
__global__ void __launch_bounds__(kThreads)
ce_fwd_kernel(const T* __restrict__ logits, const long long* __restrict__ target,
              T* __restrict__ losses, T* __restrict__ probs, int n, int c, T smoothing) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n) return;  // whole warp leaves together: the shuffles stay full
  const T* z = logits + (long long)row * c;
  T* pr = probs + (long long)row * c;
  T m = -d_inf<T>();
  for (int j = lane; j < c; j += 32) m = (z[j] > m || z[j] != z[j]) ? z[j] : m;
  m = warp_max(m);
  T se = T(0);
  for (int j = lane; j < c; j += 32) se += d_exp(z[j] - m);
  const T lse = d_log(warp_sum(se));
  const long long t = target[row];
  T sum_logp = T(0), picked = T(0);
  for (int j = lane; j < c; j += 32) {
    const T logp = (z[j] - m) - lse;  // same rounding order as the reference
    pr[j] = d_exp(logp);
    sum_logp += logp;
    if (j == t) picked = logp;
  }
  sum_logp = warp_sum(sum_logp);
  picked = warp_sum(picked);
  if (lane == 0) {
    T loss = -(T(1) - smoothing) * picked;
    if (smoothing != T(0)) loss -= smoothing / T(c) * sum_logp;
    losses[row] = (t >= 0 && t < c) ? loss : d_nan<T>();
  }
}

// d = (probs - s/C - (1-s)*[j == target]) * glosses[row]
template <typename T>
__global__ void __launch_bounds__(kThreads)
ce_bwd_kernel(const T* __restrict__ glosses, const T* __restrict__ probs,
              const long long* __restrict__ target, T* __restrict__ d, int n, int c,
              T smoothing) {
  const long long e = (long long)blockIdx.x * kThreads + threadIdx.x;
  if (e >= (long long)n * c) return;
  const long long row = e / c;
  const int j = (int)(e % c);
  T g = probs[e] - smoothing / T(c);
  if (target[row] == j) g -= T(1) - smoothing;
  d[e] = g * glosses[row];
}

}  // namespace

void cross_entropy_forward(Ptr logits, Ptr target, Ptr losses, Ptr probs, int n, int c,
                           double smoothing, int dtype, Ptr stream, int device) {
  if (n == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "cross_entropy_forward", [&](auto tag) {
    using T = decltype(tag);
    const unsigned blocks = (unsigned)((n + kRowsPerBlock - 1) / kRowsPerBlock);
    ce_fwd_kernel<T><<<blocks, kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(logits), as_ptr<const long long>(target), as_ptr<T>(losses),
        as_ptr<T>(probs), n, c, T(smoothing));
    check_launch("cross_entropy_forward", as_stream(stream));
  });
}

void cross_entropy_backward(Ptr glosses, Ptr probs, Ptr target, Ptr dlogits, int n, int c,
                            double smoothing, int dtype, Ptr stream, int device) {
  const long long total = (long long)n * c;
  if (total == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    ce_bwd_kernel<T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(glosses), as_ptr<const T>(probs), as_ptr<const long long>(target),
        as_ptr<T>(dlogits), n, c, T(smoothing));
    check_launch("cross_entropy_backward", as_stream(stream));
  });
}

}  // namespace minitl_cuda
