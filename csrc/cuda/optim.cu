// SGD and Adam(W) steps over every parameter of a group in one launch.
//
// The tensors' pointers travel in the kernel's argument block (a "tensor
// list", at most kMaxTensors per launch, well under the 4 KiB argument limit
// of every targeted architecture); each block finds its tensor by scanning
// the chunk prefix sums, then updates one chunk of kChunk elements. The
// update rules are PyTorch's, written exactly as reference.py writes them.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.cuh"

namespace minitl_cuda {
namespace {

constexpr int kMaxTensors = 48;
constexpr int kChunk = 4 * kThreads;  // elements per block

template <int K>
struct TensorList {
  void* ptr[K][kMaxTensors];        // K arrays per tensor (p, g, buffers...)
  long long size[kMaxTensors];
  int chunk_start[kMaxTensors + 1];  // prefix sums of ceil(size / kChunk)
  int count;
};

template <int K>
__device__ __forceinline__ int find_tensor(const TensorList<K>& l, int block) {
  int t = 0;
  while (t + 1 < l.count && l.chunk_start[t + 1] <= block) ++t;
  return t;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
sgd_kernel(TensorList<3> l, T lr, T momentum, T dampening, bool nesterov, T wd, bool first) {
  const int t = find_tensor(l, blockIdx.x);
  T* p = static_cast<T*>(l.ptr[0][t]);
  const T* gr = static_cast<const T*>(l.ptr[1][t]);
  T* buf = static_cast<T*>(l.ptr[2][t]);
  const long long begin = (long long)(blockIdx.x - l.chunk_start[t]) * kChunk;
  const long long end = min(begin + kChunk, l.size[t]);
  for (long long i = begin + threadIdx.x; i < end; i += kThreads) {
    T g = gr[i];
    if (wd != T(0)) g = g + wd * p[i];
    if (momentum != T(0)) {
      T b = first ? g : buf[i] * momentum + (T(1) - dampening) * g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    p[i] -= lr * g;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
adam_kernel(TensorList<4> l, T lr, T beta1, T beta2, T eps, T wd, bool decoupled,
            T bc1, T bc2) {
  const int t = find_tensor(l, blockIdx.x);
  T* p = static_cast<T*>(l.ptr[0][t]);
  const T* gr = static_cast<const T*>(l.ptr[1][t]);
  T* m = static_cast<T*>(l.ptr[2][t]);
  T* v = static_cast<T*>(l.ptr[3][t]);
  const long long begin = (long long)(blockIdx.x - l.chunk_start[t]) * kChunk;
  const long long end = min(begin + kChunk, l.size[t]);
  const T step_size = lr / bc1;
  for (long long i = begin + threadIdx.x; i < end; i += kThreads) {
    T g = gr[i], pi = p[i];
    if (wd != T(0)) {
      if (decoupled) pi *= T(1) - lr * wd;
      else g = g + wd * pi;
    }
    const T mi = m[i] * beta1 + (T(1) - beta1) * g;
    const T vi = v[i] * beta2 + (T(1) - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (d_sqrt(vi / bc2) + eps);
  }
}

// Split the tensors into lists of kMaxTensors and launch `launch` per list.
template <int K, typename Launch>
void for_each_list(const std::vector<const std::vector<Ptr>*>& arrays,
                   const std::vector<long long>& sizes, Launch&& launch) {
  const size_t n = sizes.size();
  for (const auto* a : arrays) {
    if (a->size() != n) throw std::invalid_argument("minitl._C_cuda: tensor lists differ in length");
  }
  TensorList<K> l{};
  auto flush = [&]() {
    if (l.count > 0 && l.chunk_start[l.count] > 0) launch(l, l.chunk_start[l.count]);
    l = TensorList<K>{};
  };
  for (size_t i = 0; i < n; ++i) {
    if (sizes[i] <= 0) continue;
    const long long chunks = (sizes[i] + kChunk - 1) / kChunk;
    if (l.count == kMaxTensors || l.chunk_start[l.count] + chunks > (1LL << 30)) flush();
    for (int k = 0; k < K; ++k) l.ptr[k][l.count] = reinterpret_cast<void*>((*arrays[k])[i]);
    l.size[l.count] = sizes[i];
    l.chunk_start[l.count + 1] = l.chunk_start[l.count] + (int)chunks;
    ++l.count;
  }
  flush();
}

}  // namespace

void sgd_step(const std::vector<Ptr>& params, const std::vector<Ptr>& grads,
              const std::vector<Ptr>& bufs, const std::vector<long long>& sizes,
              double lr, double momentum, double dampening, bool nesterov,
              double weight_decay, bool first, int dtype, Ptr stream, int device) {
  const DeviceGuard guard(device);
  // Without momentum the buffers are never touched: any list will do.
  const std::vector<Ptr>& b = momentum != 0.0 ? bufs : params;
  dispatch_dtype(dtype, "sgd_step", [&](auto tag) {
    using T = decltype(tag);
    for_each_list<3>({&params, &grads, &b}, sizes, [&](const TensorList<3>& l, int blocks) {
      sgd_kernel<T><<<blocks, kThreads, 0, as_stream(stream)>>>(
          l, T(lr), T(momentum), T(dampening), nesterov, T(weight_decay), first);
      check_launch("sgd_step", as_stream(stream));
    });
  });
}

void adam_step(const std::vector<Ptr>& params, const std::vector<Ptr>& grads,
               const std::vector<Ptr>& exp_avgs, const std::vector<Ptr>& exp_avg_sqs,
               const std::vector<long long>& sizes, long long step, double lr,
               double beta1, double beta2, double eps, double weight_decay,
               bool decoupled, int dtype, Ptr stream, int device) {
  const DeviceGuard guard(device);
  // Bias corrections in double on the host, as the reference computes them.
  const double bc1 = 1.0 - std::pow(beta1, (double)step);
  const double bc2 = 1.0 - std::pow(beta2, (double)step);
  dispatch_dtype(dtype, "adam_step", [&](auto tag) {
    using T = decltype(tag);
    for_each_list<4>({&params, &grads, &exp_avgs, &exp_avg_sqs}, sizes,
                     [&](const TensorList<4>& l, int blocks) {
      adam_kernel<T><<<blocks, kThreads, 0, as_stream(stream)>>>(
          l, T(lr), T(beta1), T(beta2), T(eps), T(weight_decay), decoupled, T(bc1), T(bc2));
      check_launch("adam_step", as_stream(stream));
    });
  });
}

}  // namespace minitl_cuda
