// conv2d with bias and activation fused, forward and backward, as direct
// (not im2col) kernels.
//
// Why direct: LeNet's convolutions have tiny channel counts (1->6, 6->16,
// 5x5), so an im2col buffer would cost a launch and 25x the input's memory
// traffic for a GEMM with K = 25 or 150. Instead each thread owns one output
// pixel (forward) or one input pixel (dx, a gather: no atomics, so results
// are deterministic and every element is written) for 8 channels at once,
// reading the weights from shared memory staged in chunks of the (c, i, j)
// reduction axis. The weight gradient is a reduction over N*OH*OW positions:
// one block per (o, c, group of <=25 kernel offsets, sample split) keeps the
// 25 partial sums in registers; splits are summed by a second, deterministic
// kernel. dx and the dw/db partials share one launch (blocks pick their job
// from blockIdx), so conv2d backward is 1 launch, or 2 with splits. The same
// kernels serve conv2d_pool's backward, reading the gradient through the
// pooling indices (load_gz), so the pool backward costs no launch.
#include <algorithm>

#include "common.cuh"

namespace minitl_cuda {
namespace {

constexpr int kCB = 8;   // channels per thread (output channels fwd, input dx)
constexpr int kKQ = 25;  // kernel offsets per dw block (a 5x5 kernel in one)

template <typename T>
struct Chunk {  // rows of the reduction axis staged per pass: 16 KiB of weights
  static constexpr int R = 16384 / (kCB * (int)sizeof(T));
};

__device__ __forceinline__ int pack_ij(int i, int j) { return (i << 16) | j; }

// Forward: one thread per (n, oh, ow), kCB output channels per block row.
template <typename T>
__global__ void __launch_bounds__(kThreads)
conv_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                T* __restrict__ y, Geom g, int act) {
  constexpr int R = Chunk<T>::R;
  __shared__ __align__(16) T ws[R][kCB];
  __shared__ int offs[R], kij[R];
  const int KK = g.kh * g.kw, CKK = g.c * KK, P = g.oh * g.ow;
  const int o0 = blockIdx.y * kCB;
  const long long t = (long long)blockIdx.x * kThreads + threadIdx.x;
  const bool active = t < (long long)g.n * P;
  const int n = active ? (int)(t / P) : 0, p = active ? (int)(t % P) : 0;
  const int ih0 = (p / g.ow) * g.sh - g.ph, iw0 = (p % g.ow) * g.sw - g.pw;
  const T* xw = x + (long long)n * g.c * g.h * g.w + (long long)ih0 * g.w + iw0;
  T acc[kCB];
#pragma unroll
  for (int q = 0; q < kCB; ++q) acc[q] = T(0);

  for (int r0 = 0; r0 < CKK; r0 += R) {
    const int rn = min(R, CKK - r0);
    __syncthreads();  // the previous chunk is no longer read
    for (int i = threadIdx.x; i < rn * kCB; i += kThreads) {
      const int q = i / rn, r = i % rn, o = o0 + q;
      ws[r][q] = o < g.o ? w[(long long)o * CKK + r0 + r] : T(0);
    }
    for (int r = threadIdx.x; r < rn; r += kThreads) {
      const int c = (r0 + r) / KK, ij = (r0 + r) % KK, i = ij / g.kw, j = ij % g.kw;
      offs[r] = (c * g.h + i) * g.w + j;
      kij[r] = pack_ij(i, j);
    }
    __syncthreads();
    if (!active) continue;
    for (int r = 0; r < rn; ++r) {
      const int ih = ih0 + (kij[r] >> 16), iw = iw0 + (kij[r] & 0xffff);
      if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
      const T xv = xw[offs[r]];
#pragma unroll
      for (int q = 0; q < kCB; ++q) acc[q] += xv * ws[r][q];
    }
  }
  if (!active) return;
#pragma unroll
  for (int q = 0; q < kCB; ++q) {
    const int o = o0 + q;
    if (o >= g.o) break;
    const T v = acc[q] + (b ? b[o] : T(0));
    y[((long long)n * g.o + o) * P + p] = act_forward(v, act);
  }
}

// What one backward launch computes; blocks [0, dw_blocks) do dw/db partials,
// the rest do dx.
template <typename T>
struct Bwd {
  const T *gy, *x, *w, *y;
  T *dx, *dw, *db;
  T* ws;                  // partials [split][o*c*kk + o] when splits > 1
  Geom g;
  int act, splits, kgroups, dw_c, dw_blocks;
  // conv2d_pool: gy, y are pooled (N, O, qh, qw) and pidx holds each pooled
  // output's argmax flat into the conv plane; null for a plain conv.
  const long long* pidx;
  int pool_h, pool_w, qh, qw;
};

// The gradient at conv output (n, o, oh, ow) after the activation: read
// directly, or (conv2d_pool) routed from the pooled output whose argmax it
// is. Pool windows do not overlap, so each conv output has at most one.
template <typename T>
__device__ __forceinline__ T load_gz(const Bwd<T>& a, long long no, int oh, int ow) {
  long long gi;
  if (a.pidx == nullptr) {
    gi = no * a.g.oh * a.g.ow + oh * a.g.ow + ow;
  } else {
    const int ph = oh / a.pool_h, pw = ow / a.pool_w;
    if (ph >= a.qh || pw >= a.qw) return T(0);
    gi = no * a.qh * a.qw + ph * a.qw + pw;
    if (a.pidx[gi] != oh * a.g.ow + ow) return T(0);
  }
  return a.y ? act_backward(a.gy[gi], a.y[gi], a.act) : a.gy[gi];
}

// dx for one input pixel (n, h, w) and kCB input channels: a gather over
// every (o, i, j) whose output window covers the pixel.
template <typename T>
__device__ void conv_dx_block(const Bwd<T>& a, int block) {
  constexpr int R = Chunk<T>::R;
  __shared__ __align__(16) T ws[R][kCB];
  __shared__ int offs[R], kij[R];
  const Geom& g = a.g;
  const int KK = g.kh * g.kw, OKK = g.o * KK, HW = g.h * g.w;
  const int cblocks = (g.c + kCB - 1) / kCB;
  const int c0 = (block % cblocks) * kCB;
  const long long t = (long long)(block / cblocks) * kThreads + threadIdx.x;
  const bool active = t < (long long)g.n * HW;
  const int n = active ? (int)(t / HW) : 0, hw = active ? (int)(t % HW) : 0;
  const int th0 = hw / g.w + g.ph, tw0 = hw % g.w + g.pw;  // oh*sh + i == th0
  const long long nO = (long long)n * g.o;
  T acc[kCB];
#pragma unroll
  for (int q = 0; q < kCB; ++q) acc[q] = T(0);

  for (int r0 = 0; r0 < OKK; r0 += R) {
    const int rn = min(R, OKK - r0);
    __syncthreads();
    for (int i = threadIdx.x; i < rn * kCB; i += kThreads) {
      const int q = i / rn, r = r0 + i % rn, c = c0 + q;
      ws[i % rn][q] = c < g.c ? a.w[((long long)(r / KK) * g.c + c) * KK + r % KK] : T(0);
    }
    for (int r = threadIdx.x; r < rn; r += kThreads) {
      const int o = (r0 + r) / KK, ij = (r0 + r) % KK;
      offs[r] = o;
      kij[r] = pack_ij(ij / g.kw, ij % g.kw);
    }
    __syncthreads();
    if (!active) continue;
    for (int r = 0; r < rn; ++r) {
      int oh = th0 - (kij[r] >> 16), ow = tw0 - (kij[r] & 0xffff);
      if (oh < 0 || ow < 0) continue;
      if (g.sh != 1) { if (oh % g.sh) continue; oh /= g.sh; }
      if (g.sw != 1) { if (ow % g.sw) continue; ow /= g.sw; }
      if (oh >= g.oh || ow >= g.ow) continue;
      const T gz = load_gz(a, nO + offs[r], oh, ow);
#pragma unroll
      for (int q = 0; q < kCB; ++q) acc[q] += gz * ws[r][q];
    }
  }
  if (!active) return;
#pragma unroll
  for (int q = 0; q < kCB; ++q) {
    if (c0 + q >= g.c) break;
    a.dx[((long long)n * g.c + c0 + q) * HW + hw] = acc[q];
  }
}

// dw[o, c, kg*25 .. +25) and (for c == 0, kg == 0) db[o] summed over one
// split of the samples; the block reduces its 256 threads' partial sums.
template <typename T>
__device__ void conv_dw_block(const Bwd<T>& a, int block) {
  __shared__ T red[kThreads / 32][kKQ + 1];
  __shared__ int kij[kKQ];
  const Geom& g = a.g;
  const int KK = g.kh * g.kw, P = g.oh * g.ow;
  const int s = block % a.splits;
  int rest = block / a.splits;
  const int kg = rest % a.kgroups;
  rest /= a.kgroups;
  const int c = rest % a.dw_c, o = rest / a.dw_c;
  const int k0 = kg * kKQ, nk = a.dw ? min(kKQ, KK - k0) : 0;
  const bool do_db = a.db && c == 0 && kg == 0;
  const int n_lo = (int)((long long)g.n * s / a.splits);
  const int n_hi = (int)((long long)g.n * (s + 1) / a.splits);
  const int tid = threadIdx.x;
  if (tid < nk) kij[tid] = pack_ij((k0 + tid) / g.kw, (k0 + tid) % g.kw);
  __syncthreads();

  T acc[kKQ], accb = T(0);
#pragma unroll
  for (int q = 0; q < kKQ; ++q) acc[q] = T(0);
  const long long count = (long long)(n_hi - n_lo) * P;
  for (long long t = threadIdx.x; t < count; t += kThreads) {
    const int n = n_lo + (int)(t / P), p = (int)(t % P);
    const int oh = p / g.ow, ow = p % g.ow;
    const T gz = load_gz(a, (long long)n * g.o + o, oh, ow);
    accb += gz;
    const int ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
    const T* xp = a.x + ((long long)n * g.c + c) * g.h * g.w;
#pragma unroll
    for (int q = 0; q < kKQ; ++q) {
      if (q >= nk) break;
      const int ih = ih0 + (kij[q] >> 16), iw = iw0 + (kij[q] & 0xffff);
      if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) acc[q] += gz * xp[ih * g.w + iw];
    }
  }
  // Block reduction: warp shuffles, then one row per warp in shared memory.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int q = 0; q < kKQ; ++q) {
    const T v = warp_sum(acc[q]);
    if (lane == 0) red[warp][q] = v;
  }
  const T vb = warp_sum(accb);
  if (lane == 0) red[warp][kKQ] = vb;
  __syncthreads();
  const int q = threadIdx.x;
  if (q > kKQ || (q < kKQ && q >= nk) || (q == kKQ && !do_db)) return;
  T sum = T(0);
  for (int wi = 0; wi < kThreads / 32; ++wi) sum += red[wi][q];
  const long long OCKK = (long long)g.o * g.c * KK;
  if (a.splits == 1) {
    if (q < kKQ) a.dw[((long long)o * g.c + c) * KK + k0 + q] = sum;
    else a.db[o] = sum;
  } else {
    T* part = a.ws + s * (OCKK + g.o);
    if (q < kKQ) part[((long long)o * g.c + c) * KK + k0 + q] = sum;
    else part[OCKK + o] = sum;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) conv_bwd_kernel(Bwd<T> a) {
  const int block = blockIdx.x;
  if (block < a.dw_blocks) conv_dw_block(a, block);
  else conv_dx_block(a, block - a.dw_blocks);
}

// Sum the split partials into dw and db, always in the same order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
conv_reduce_kernel(const T* __restrict__ ws, T* dw, T* db, long long ockk, int o, int splits) {
  const long long e = (long long)blockIdx.x * kThreads + threadIdx.x;
  const long long stride = ockk + o;
  if (e >= stride) return;
  T* dst = e < ockk ? (dw ? dw + e : nullptr) : (db ? db + (e - ockk) : nullptr);
  if (!dst) return;
  T sum = T(0);
  for (int s = 0; s < splits; ++s) sum += ws[s * stride + e];
  *dst = sum;
}

}  // namespace

void conv2d_forward(Ptr x, Ptr w, Ptr b, Ptr y, const Geom& g, int act, int dtype,
                    Ptr stream, int device) {
  const long long outputs = (long long)g.n * g.oh * g.ow;
  if (outputs == 0 || g.o == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "conv2d_forward", [&](auto tag) {
    using T = decltype(tag);
    dim3 grid(blocks_for(outputs), (g.o + kCB - 1) / kCB);
    conv_fwd_kernel<T><<<grid, kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(x), as_ptr<const T>(w), as_ptr<const T>(b), as_ptr<T>(y), g, act);
    check_launch("conv2d_forward", as_stream(stream));
  });
}

// Enough blocks to give every SM ~4, but at least 2048 positions per split
// so that the partial sums stay worth their write and re-read.
int conv2d_backward_splits(const Geom& g, int device) {
  const DeviceGuard guard(device);
  const int KK = g.kh * g.kw;
  const long long base = (long long)g.o * g.c * ((KK + kKQ - 1) / kKQ);
  if (base == 0 || g.n <= 1) return 1;
  long long s = (4LL * sm_count() + base - 1) / base;
  s = std::min<long long>(s, g.n);
  s = std::min<long long>(s, std::max<long long>(1, (long long)g.n * g.oh * g.ow / 2048));
  return (int)std::max<long long>(1, std::min<long long>(s, 1024));
}

void conv2d_backward(Ptr gy, Ptr x, Ptr w, Ptr y, Ptr dx, Ptr dw, Ptr db, Ptr ws,
                     int splits, const Geom& g, int act, int dtype, Ptr stream,
                     int device, Ptr pool_idx, int pool_h, int pool_w) {
  const DeviceGuard guard(device);
  if (splits < 1 || (splits > 1 && !ws)) {
    throw std::invalid_argument("minitl._C_cuda.conv2d_backward: bad splits/workspace");
  }
  dispatch_dtype(dtype, "conv2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const int KK = g.kh * g.kw;
    Bwd<T> a{};
    a.gy = as_ptr<const T>(gy); a.x = as_ptr<const T>(x); a.w = as_ptr<const T>(w);
    a.y = act == kNone ? nullptr : as_ptr<const T>(y);
    a.dx = as_ptr<T>(dx); a.dw = as_ptr<T>(dw); a.db = as_ptr<T>(db); a.ws = as_ptr<T>(ws);
    a.g = g; a.act = act; a.splits = splits;
    a.pidx = as_ptr<const long long>(pool_idx);
    if (pool_idx) {
      if (pool_h < 1 || pool_w < 1) {
        throw std::invalid_argument("minitl._C_cuda.conv2d_backward: bad pool window");
      }
      a.pool_h = pool_h; a.pool_w = pool_w; a.qh = g.oh / pool_h; a.qw = g.ow / pool_w;
    }
    a.dw_c = dw ? g.c : 1;
    a.kgroups = dw ? (KK + kKQ - 1) / kKQ : 1;
    const bool wants_dw = (dw && (long long)g.o * g.c * KK > 0) || (db && g.o > 0);
    const long long dw_blocks = wants_dw ? (long long)g.o * a.dw_c * a.kgroups * splits : 0;
    long long dx_blocks = 0;
    if (dx && g.c > 0) {
      dx_blocks = (long long)blocks_for((long long)g.n * g.h * g.w) * ((g.c + kCB - 1) / kCB);
    }
    const long long total = dw_blocks + dx_blocks;
    if (total == 0) return;
    if (total > 2147483647LL) {  // grid.x's limit; blockIdx.x is read as an int below
      throw std::invalid_argument("minitl._C_cuda.conv2d_backward: " + std::to_string(total) +
                                  " blocks exceed CUDA's grid limit of 2^31 - 1");
    }
    a.dw_blocks = (int)dw_blocks;
    cudaStream_t st = as_stream(stream);
    conv_bwd_kernel<T><<<(unsigned)total, kThreads, 0, st>>>(a);
    check_launch("conv2d_backward", st);
    if (wants_dw && splits > 1) {
      const long long ockk = (long long)g.o * g.c * KK;
      conv_reduce_kernel<T><<<blocks_for(ockk + g.o), kThreads, 0, st>>>(
          a.ws, a.dw, a.db, ockk, g.o, splits);
      check_launch("conv2d_backward (split reduction)", st);
    }
  });
}

}  // namespace minitl_cuda
