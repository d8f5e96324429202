// conv2d + bias + activation + non-overlapping max-pool in one launch: the
// Conv2d -> ReLU -> MaxPool2d(2) block of LeNet (kernels/fused_reference.py
// defines the op). Each thread owns one *pooled* output pixel for 8 output
// channels and computes the pool_h x pool_w conv outputs under it, so the
// full-size conv output never touches memory. The backward is conv.cu's
// kernel reading the gradient through the pooling indices.
#include "common.cuh"

namespace minitl_cuda {
namespace {

constexpr int kCB = 8;    // output channels per thread
constexpr int kMaxPool = 4;  // pool_h * pool_w handled by the fused kernel

template <typename T>
struct Chunk {  // rows of the (c, i, j) axis staged per pass: 16 KiB of weights
  static constexpr int R = 16384 / (kCB * (int)sizeof(T));
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
conv_pool_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                     T* __restrict__ y, long long* __restrict__ idx, Geom g, int act,
                     int pool_h, int pool_w) {
  constexpr int R = Chunk<T>::R;
  __shared__ __align__(16) T ws[R][kCB];
  __shared__ int offs[R], kij[R];
  const int KK = g.kh * g.kw, CKK = g.c * KK;
  const int qh = g.oh / pool_h, qw = g.ow / pool_w, Q = qh * qw, np = pool_h * pool_w;
  const int o0 = blockIdx.y * kCB;
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const bool active = t < (long long)g.n * Q;
  const int n = active ? (int)(t / Q) : 0, q = active ? (int)(t % Q) : 0;
  const int oh0 = (q / qw) * pool_h, ow0 = (q % qw) * pool_w;
  const T* xn = x + (long long)n * g.c * g.h * g.w;
  int ih0[kMaxPool], iw0[kMaxPool];
#pragma unroll
  for (int k = 0; k < kMaxPool; ++k) {
    ih0[k] = (oh0 + k / pool_w) * g.sh - g.ph;
    iw0[k] = (ow0 + k % pool_w) * g.sw - g.pw;
  }
  T acc[kMaxPool][kCB];
#pragma unroll
  for (int k = 0; k < kMaxPool; ++k)
#pragma unroll
    for (int c = 0; c < kCB; ++c) acc[k][c] = T(0);

  for (int r0 = 0; r0 < CKK; r0 += R) {
    const int rn = min(R, CKK - r0);
    __syncthreads();  // the previous chunk is no longer read
    for (int i = threadIdx.x; i < rn * kCB; i += kThreads) {
      const int c = i / rn, r = i % rn, o = o0 + c;
      ws[r][c] = o < g.o ? w[(long long)o * CKK + r0 + r] : T(0);
    }
    for (int r = threadIdx.x; r < rn; r += kThreads) {
      const int c = (r0 + r) / KK, ij = (r0 + r) % KK;
      offs[r] = c * g.h * g.w;
      kij[r] = ((ij / g.kw) << 16) | (ij % g.kw);
    }
    __syncthreads();
    if (!active) continue;
    for (int r = 0; r < rn; ++r) {
      const int i = kij[r] >> 16, j = kij[r] & 0xffff;
#pragma unroll
      for (int k = 0; k < kMaxPool; ++k) {
        if (k >= np) break;
        const int ih = ih0[k] + i, iw = iw0[k] + j;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
        const T xv = xn[offs[r] + ih * g.w + iw];
#pragma unroll
        for (int c = 0; c < kCB; ++c) acc[k][c] += xv * ws[r][c];
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int c = 0; c < kCB; ++c) {
    const int o = o0 + c;
    if (o >= g.o) break;
    // Bias before the max, as the reference pools z = conv + b; first
    // maximum in row-major window order wins and a NaN beats any number.
    const T bias = b ? b[o] : T(0);
    T best = acc[0][c] + bias;
    int best_k = 0;
#pragma unroll
    for (int k = 1; k < kMaxPool; ++k) {
      if (k >= np) break;
      const T z = acc[k][c] + bias;
      if (z > best || (z != z && best == best)) { best = z; best_k = k; }
    }
    const long long out = ((long long)n * g.o + o) * Q + q;
    y[out] = act_forward(best, act);
    idx[out] = (long long)(oh0 + best_k / pool_w) * g.ow + ow0 + best_k % pool_w;
  }
}

}  // namespace

void conv2d_pool_forward(Ptr x, Ptr w, Ptr b, Ptr y, Ptr idx, const Geom& g, int act,
                         int pool_h, int pool_w, int dtype, Ptr stream, int device) {
  if (pool_h < 1 || pool_w < 1 || pool_h * pool_w > kMaxPool) {
    throw std::invalid_argument("minitl._C_cuda.conv2d_pool_forward: the fused kernel takes "
                                "pool windows of at most 4 elements");
  }
  const long long outputs = (long long)g.n * (g.oh / pool_h) * (g.ow / pool_w);
  if (outputs == 0 || g.o == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "conv2d_pool_forward", [&](auto tag) {
    using T = decltype(tag);
    dim3 grid(blocks_for(outputs), (g.o + kCB - 1) / kCB);
    conv_pool_fwd_kernel<T><<<grid, kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(x), as_ptr<const T>(w), as_ptr<const T>(b), as_ptr<T>(y),
        as_ptr<long long>(idx), g, act, pool_h, pool_w);
    check_launch("conv2d_pool_forward", as_stream(stream));
  });
}

}  // namespace minitl_cuda
