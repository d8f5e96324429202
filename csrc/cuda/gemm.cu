// Linear layer, forward and backward, on one tiled shared-memory GEMM.
//
// Why our own GEMM rather than cuBLAS/cupy.matmul: the matrices of LeNet and
// the MLP at batch 64..1024 are small (at most ~1024x800x800), so the cost is
// launches, not FLOPs. Owning the kernel lets one launch do everything:
//   forward   y  = act(x @ w.T + b)            bias + activation in the epilogue
//   backward  dx = gz @ w,  [dw | db] = gz.T @ [x | 1]
// where gz = gy * act'(y) is formed while loading tiles (never stored), db is
// the GEMM's extra "ones" column, and dx and dw run as two problems of ONE
// launch (blockIdx.z picks the problem). Accumulation is in T (float32 or
// float64) with plain FMAs and no fast-math, which keeps float32 results
// within ~1e-6 relative of a float64 reference for these sizes.
#include <algorithm>

#include "common.cuh"

namespace minitl_cuda {
namespace {

// One GEMM problem C = A @ B with strided operands and fused extras.
template <typename T>
struct Gemm {
  const T* a; long long sam, sak;  // A(m, k) = a[m*sam + k*sak]
  const T* ay; int a_act;          // if ay: A(m, k) = act_backward(A, ay[same], a_act)
  const T* b; long long sbk, sbn;  // B(k, n) = b[k*sbk + n*sbn]
  int ones_col;                    // 1: B has an extra column n == N of ones ...
  T* c_extra;                      // ... whose result C(m, N) goes to c_extra[m]
  T* c; long long ldc;             // C(m, n) = c[m*ldc + n] for n < N
  const T* bias; int c_act;        // epilogue: act(C + bias[n])
  int m, n, k;
};

template <typename T>
__device__ __forceinline__ T load_a(const Gemm<T>& p, int gm, int gk) {
  if (gm >= p.m || gk >= p.k) return T(0);
  long long off = gm * p.sam + gk * p.sak;
  T v = p.a[off];
  return p.ay ? act_backward(v, p.ay[off], p.a_act) : v;
}

template <typename T>
__device__ __forceinline__ T load_b(const Gemm<T>& p, int gk, int gn) {
  if (gk >= p.k) return T(0);
  if (gn < p.n) return p.b[gk * p.sbk + gn * p.sbn];
  return (gn == p.n && p.ones_col) ? T(1) : T(0);
}

// BM x BN tile per block of 256 threads, TM x TN outputs per thread.
// Tiles are stored k-major with one padding column so that the strided
// shared-memory stores of the loaders do not hit a single bank.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(kThreads) gemm_kernel(Gemm<T> p0, Gemm<T> p1) {
  static_assert((BM / TM) * (BN / TN) == kThreads, "tile does not match block size");
  const Gemm<T> p = blockIdx.z == 0 ? p0 : p1;
  const int ncols = p.n + p.ones_col;
  // Row tiles on grid.x (up to 2^31 - 1), column tiles on grid.y (at most
  // 65535): rows are the batch, which can pass 65535 tiles (4.19M rows).
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  if (m0 >= p.m || n0 >= ncols) return;  // uniform per block: before any barrier

  __shared__ T As[BK][BM + 1];
  __shared__ T Bs[BK][BN + 1];
  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  // Walk each operand along its unit-stride axis so global loads coalesce.
  const bool a_k_fast = p.sak == 1, b_n_fast = p.sbn == 1;

  for (int k0 = 0; k0 < p.k; k0 += BK) {
    for (int i = tid; i < BM * BK; i += kThreads) {
      int mm = a_k_fast ? i / BK : i % BM;
      int kk = a_k_fast ? i % BK : i / BM;
      As[kk][mm] = load_a(p, m0 + mm, k0 + kk);
    }
    for (int i = tid; i < BK * BN; i += kThreads) {
      int nn = b_n_fast ? i % BN : i / BK;
      int kk = b_n_fast ? i / BN : i % BK;
      Bs[kk][nn] = load_b(p, k0 + kk, n0 + nn);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = As[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int gm = m0 + ty * TM + i;
    if (gm >= p.m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gn = n0 + tx * TN + j;
      if (gn < p.n) {
        T v = acc[i][j];
        if (p.bias) v += p.bias[gn];
        p.c[gm * p.ldc + gn] = act_forward(v, p.c_act);
      } else if (gn == p.n && p.ones_col) {
        p.c_extra[gm] = acc[i][j];
      }
    }
  }
}

template <typename T>
long long tiles(const Gemm<T>& p, int bm, int bn) {
  if (p.m == 0 || p.n + p.ones_col == 0) return 0;
  return (long long)((p.m + bm - 1) / bm) * ((p.n + p.ones_col + bn - 1) / bn);
}

// Launch up to two problems in one grid. Large problems take 64x64 tiles;
// when those would not fill the GPU, 32x32 tiles give 4x more blocks.
template <typename T>
void launch_gemm(const Gemm<T>* probs, int count, cudaStream_t stream, const char* name) {
  if (count == 0) return;
  const Gemm<T>& p0 = probs[0];
  const Gemm<T>& p1 = count > 1 ? probs[1] : probs[0];
  long long big = 0;
  for (int i = 0; i < count; ++i) big += tiles(probs[i], 64, 64);
  const bool small = big < 2LL * sm_count();
  const int bm = small ? 32 : 64, bn = bm;
  long long row_tiles = 0, col_tiles = 0;
  for (int i = 0; i < count; ++i) {
    row_tiles = std::max(row_tiles, (long long)(probs[i].m + bm - 1) / bm);
    col_tiles = std::max(col_tiles, (long long)(probs[i].n + probs[i].ones_col + bn - 1) / bn);
  }
  if (row_tiles == 0 || col_tiles == 0) return;
  if (col_tiles > 65535) {  // the columns are features: > 2M of them in one layer
    throw std::invalid_argument(std::string("minitl._C_cuda.") + name + ": " +
                                std::to_string(col_tiles * bn) +
                                " or more output columns exceed the GEMM's grid (at most " +
                                std::to_string(65535LL * bn) + ")");
  }
  dim3 grid((unsigned)row_tiles, (unsigned)col_tiles, count);
  if (small) {
    gemm_kernel<T, 32, 32, 32, 2, 2><<<grid, kThreads, 0, stream>>>(p0, p1);
  } else {
    gemm_kernel<T, 64, 64, 16, 4, 4><<<grid, kThreads, 0, stream>>>(p0, p1);
  }
  check_launch(name, stream);
}

template <typename T>
Gemm<T> empty_problem() {
  Gemm<T> p{};
  return p;
}

}  // namespace

void linear_forward(Ptr x, Ptr w, Ptr b, Ptr y, int n, int in, int out, int act,
                    int dtype, Ptr stream, int device) {
  if (n == 0 || out == 0) return;
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "linear_forward", [&](auto tag) {
    using T = decltype(tag);
    Gemm<T> p = empty_problem<T>();
    p.a = as_ptr<const T>(x); p.sam = in; p.sak = 1;
    p.b = as_ptr<const T>(w); p.sbk = 1; p.sbn = in;       // B = w.T
    p.c = as_ptr<T>(y); p.ldc = out;
    p.bias = as_ptr<const T>(b); p.c_act = act;
    p.m = n; p.n = out; p.k = in;
    launch_gemm(&p, 1, as_stream(stream), "linear_forward");
  });
}

void linear_backward(Ptr gy, Ptr x, Ptr w, Ptr y, Ptr dx, Ptr dw, Ptr db, int n, int in,
                     int out, int act, int dtype, Ptr stream, int device) {
  const DeviceGuard guard(device);
  dispatch_dtype(dtype, "linear_backward", [&](auto tag) {
    using T = decltype(tag);
    Gemm<T> probs[2];
    int count = 0;
    const T* yp = act == kNone ? nullptr : as_ptr<const T>(y);
    if (dx && n > 0 && in > 0) {  // dx (n, in) = gz (n, out) @ w (out, in)
      Gemm<T> p = empty_problem<T>();
      p.a = as_ptr<const T>(gy); p.sam = out; p.sak = 1; p.ay = yp; p.a_act = act;
      p.b = as_ptr<const T>(w); p.sbk = in; p.sbn = 1;
      p.c = as_ptr<T>(dx); p.ldc = in;
      p.m = n; p.n = in; p.k = out;
      probs[count++] = p;
    }
    if ((dw && in > 0) || db) {  // [dw | db] (out, in+1) = gz.T (out, n) @ [x | 1]
      Gemm<T> p = empty_problem<T>();
      p.a = as_ptr<const T>(gy); p.sam = 1; p.sak = out; p.ay = yp; p.a_act = act;
      p.b = as_ptr<const T>(x); p.sbk = in; p.sbn = 1;
      p.c = as_ptr<T>(dw); p.ldc = in;
      p.ones_col = db ? 1 : 0; p.c_extra = as_ptr<T>(db);
      p.m = out; p.n = dw ? in : 0; p.k = n;
      if (p.m > 0) probs[count++] = p;
    }
    launch_gemm(probs, count, as_stream(stream), "linear_backward");
  });
}

}  // namespace minitl_cuda
