// BatchNorm forward (train: batch statistics + running-stat update on the
// device; eval: running statistics folded into scale/shift) and backward over
// x (N, C, *spatial) viewed as (N, C, S), the contract of
// minitl/kernels/norm_reference.py and the twin of csrc/cpu/batchnorm.cpp.
//
// One block per channel: its threads walk the channel's M = N*S values in a
// fixed order, each summing in double (float64 sums for float32 inputs too,
// as the CPU twin does), and the block folds the per-thread sums with a fixed
// tree (warp shuffles, then the warps' partials in order). No atomics, no
// workspace: the results are bit-identical from run to run. Forward is one
// launch (mean pass, squared-deviation pass, thread 0 writes mean/invstd and
// updates the running buffers, then y = x * scale + shift); backward is one
// launch (the sums of g and g*xhat, then dx). Where no reduction is needed
// (eval forward, eval backward without dweight/dbias) a channel's values are
// also split over grid.y blocks, so few channels still fill the GPU.
//
// The per-channel vectors (weight, bias, running buffers, mean, invstd) may
// be float32 or float64 independently of x (the modules keep float32 running
// buffers): bit k of `vec_f64` says vector k is float64 (kVec* below).
#include <algorithm>
#include <cmath>

#include "common.cuh"

namespace minitl_cuda {
namespace {

constexpr int kBnThreads = 512;  // more loads in flight per channel than kThreads
constexpr int kBnWarps = kBnThreads / 32;
constexpr int kMaxSplit = 64;  // grid.y blocks per channel when nothing is reduced

__device__ __forceinline__ double load_vec(const void* p, int vec_f64, int bit, long long i) {
  return (vec_f64 >> bit) & 1 ? static_cast<const double*>(p)[i]
                              : double(static_cast<const float*>(p)[i]);
}

__device__ __forceinline__ void store_vec(void* p, int vec_f64, int bit, long long i, double v) {
  if ((vec_f64 >> bit) & 1)
    static_cast<double*>(p)[i] = v;
  else
    static_cast<float*>(p)[i] = float(v);
}

// f(offset) for this thread's values of channel c, in order: value k of the
// channel (k = n*S + s, at (n*C + c)*S + s) for k = start, start + step, ...
// Advances (n, s) by step without a division per value.
template <typename F>
__device__ __forceinline__ void for_channel(long long n_count, long long c_count, long long s_count,
                                            long long c, long long start, long long step, F f) {
  const long long dn = step / s_count, ds = step % s_count;
  long long n = start / s_count, s = start % s_count;
  while (n < n_count) {
    f((n * c_count + c) * s_count + s);
    n += dn;
    s += ds;
    if (s >= s_count) s -= s_count, ++n;
  }
}

// Sum of v over the block, in a fixed order; every thread gets the result.
// `red` holds kBnWarps + 1 doubles; every thread of the block must call it.
__device__ __forceinline__ double block_sum(double v, double* red) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // the previous call's readers are done with red
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double t = lane < kBnWarps ? red[lane] : 0.0;
    t = warp_sum(t);
    if (lane == 0) red[kBnWarps] = t;
  }
  __syncthreads();
  return red[kBnWarps];
}

// Grid (C, split): block (c, j) serves channel c; split > 1 only in eval.
template <typename T>
__global__ void __launch_bounds__(kBnThreads)
bn_forward_kernel(const T* __restrict__ x, const void* w, const void* b, void* rm, void* rv,
                  T* __restrict__ y, T* __restrict__ mean_out, T* __restrict__ invstd_out,
                  long long n, long long cc, long long s, int vec_f64, bool training,
                  double factor, double eps) {
  __shared__ double red[kBnWarps + 1];
  const long long c = blockIdx.x, m = n * s;
  const long long start = (long long)blockIdx.y * kBnThreads + threadIdx.x;
  const long long step = (long long)gridDim.y * kBnThreads;
  double mu, var;
  if (training) {
    // mean, then the biased variance about it (two passes, as the reference)
    double acc = 0.0;
    for_channel(n, cc, s, c, start, step, [&](long long i) { acc += double(x[i]); });
    mu = block_sum(acc, red) / double(m);
    acc = 0.0;
    for_channel(n, cc, s, c, start, step, [&](long long i) {
      const double d = double(x[i]) - mu;
      acc += d * d;
    });
    var = block_sum(acc, red) / double(m);
  } else {
    mu = load_vec(rm, vec_f64, kVecRunningMean, c);
    var = load_vec(rv, vec_f64, kVecRunningVar, c);
  }
  const double is = 1.0 / sqrt(var + eps);
  const double sc = w ? is * load_vec(w, vec_f64, kVecWeight, c) : is;
  const double sh = b ? load_vec(b, vec_f64, kVecBias, c) - mu * sc : -mu * sc;
  if (threadIdx.x == 0 && blockIdx.y == 0) {
    mean_out[c] = T(mu);
    invstd_out[c] = T(is);
    if (training && rm) {
      // r <- (1 - f) r + f * stat; PyTorch keeps the unbiased variance.
      const double unbiased = var * (double(m) / double(m - 1));
      store_vec(rm, vec_f64, kVecRunningMean, c,
                (1.0 - factor) * load_vec(rm, vec_f64, kVecRunningMean, c) + factor * mu);
      store_vec(rv, vec_f64, kVecRunningVar, c,
                (1.0 - factor) * load_vec(rv, vec_f64, kVecRunningVar, c) + factor * unbiased);
    }
  }
  // y = x * scale + shift, folded per channel in the dtype of x
  const T tsc = T(sc), tsh = T(sh);
  for_channel(n, cc, s, c, start, step, [&](long long i) { y[i] = x[i] * tsc + tsh; });
}

// Grid (C, split): split > 1 only when no sum is needed. dx, dw, db may be null.
template <typename T>
__global__ void __launch_bounds__(kBnThreads)
bn_backward_kernel(const T* __restrict__ gy, const T* __restrict__ x, const void* w,
                   const void* mean, const void* invstd, T* __restrict__ dx, T* __restrict__ dw,
                   T* __restrict__ db, long long n, long long cc, long long s, int vec_f64,
                   bool training, bool sums) {
  __shared__ double red[kBnWarps + 1];
  const long long c = blockIdx.x, m = n * s;
  const long long start = (long long)blockIdx.y * kBnThreads + threadIdx.x;
  const long long step = (long long)gridDim.y * kBnThreads;
  const double mu = load_vec(mean, vec_f64, kVecMean, c);
  const double is = load_vec(invstd, vec_f64, kVecInvstd, c);
  const double sc = w ? is * load_vec(w, vec_f64, kVecWeight, c) : is;
  double sg = 0.0, sgx = 0.0;
  if (sums) {
    for_channel(n, cc, s, c, start, step, [&](long long i) {
      const double gi = double(gy[i]);
      sg += gi;
      sgx += gi * ((double(x[i]) - mu) * is);
    });
    sg = block_sum(sg, red);
    sgx = block_sum(sgx, red);
    if (threadIdx.x == 0) {
      if (dw) dw[c] = T(sgx);  // dweight = sum(g * xhat)
      if (db) db[c] = T(sg);   // dbias = sum(g)
    }
  }
  if (!dx) return;
  if (training) {
    // dx = (scale / M) * (M g - sum g - xhat * sum(g xhat))
    const double mg = sg / double(m), mgx = sgx / double(m);
    for_channel(n, cc, s, c, start, step, [&](long long i) {
      const double xhat = (double(x[i]) - mu) * is;
      dx[i] = T((double(gy[i]) - mg - xhat * mgx) * sc);
    });
  } else {
    const T tsc = T(sc);  // eval: y = x * scale + shift, so dx = g * scale
    for_channel(n, cc, s, c, start, step, [&](long long i) { dx[i] = gy[i] * tsc; });
  }
}

// grid.y blocks per channel for a pass without reduction: enough to give
// each thread a few values, at most kMaxSplit.
unsigned split_for(long long m) {
  const long long per_block = 4LL * kBnThreads;
  return (unsigned)std::min<long long>(kMaxSplit, std::max<long long>(1, (m + per_block - 1) / per_block));
}

}  // namespace

void batch_norm_forward(Ptr x, Ptr w, Ptr b, Ptr rm, Ptr rv, Ptr y, Ptr mean, Ptr invstd,
                        long long n, long long c, long long s, int vec_f64, bool training,
                        double factor, double eps, int dtype, Ptr stream, int device) {
  if (c == 0) return;
  const DeviceGuard guard(device);
  const dim3 grid((unsigned)c, training ? 1u : split_for(n * s));
  dispatch_dtype(dtype, "batch_norm_forward", [&](auto tag) {
    using T = decltype(tag);
    bn_forward_kernel<T><<<grid, kBnThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(x), as_ptr<const void>(w), as_ptr<const void>(b), as_ptr<void>(rm),
        as_ptr<void>(rv), as_ptr<T>(y), as_ptr<T>(mean), as_ptr<T>(invstd), n, c, s, vec_f64,
        training, factor, eps);
    check_launch("batch_norm_forward", as_stream(stream));
  });
}

void batch_norm_backward(Ptr gy, Ptr x, Ptr w, Ptr mean, Ptr invstd, Ptr dx, Ptr dw, Ptr db,
                         long long n, long long c, long long s, int vec_f64, bool training,
                         int dtype, Ptr stream, int device) {
  // Sums are needed for dweight/dbias, and for dx in train mode.
  const bool sums = dw != 0 || db != 0 || (dx != 0 && training);
  if (c == 0 || (dx == 0 && !sums)) return;
  const DeviceGuard guard(device);
  const dim3 grid((unsigned)c, sums ? 1u : split_for(n * s));
  dispatch_dtype(dtype, "batch_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    bn_backward_kernel<T><<<grid, kBnThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(gy), as_ptr<const T>(x), as_ptr<const void>(w), as_ptr<const void>(mean),
        as_ptr<const void>(invstd), as_ptr<T>(dx), as_ptr<T>(dw), as_ptr<T>(db), n, c, s, vec_f64,
        training, sums);
    check_launch("batch_norm_backward", as_stream(stream));
  });
}

}  // namespace minitl_cuda
