// Host-side interface of the CUDA kernels, shared by the .cu launchers and
// the pybind11 binding (bind.cpp), which is compiled by the host compiler
// and so must not need CUDA headers: pointers and streams are integers here.
//
// Conventions: every array is C-contiguous on `device`; `dtype` is kFloat32
// or kFloat64 for all float arrays of one call; indices and targets are
// int64; `stream` is CuPy's current stream (cudaStream_t as an integer).
#pragma once

#include <cstdint>
#include <vector>

namespace minitl_cuda {

using Ptr = std::uintptr_t;

enum Dtype { kFloat32 = 0, kFloat64 = 1 };
enum Act { kNone = 0, kRelu = 1, kTanh = 2, kSigmoid = 3 };

// A 2-D convolution or pooling window geometry (oh/ow derived by the caller).
// The kernels index within one sample (and the weights) with int: the caller
// (minitl/kernels/cuda.py, _conv_geom and _pool_geom) rejects geometries whose
// per-sample extents would overflow it; offsets across the batch are 64-bit.
struct Geom {
  int n, c, h, w;    // input (N, C, H, W)
  int o;             // output channels (conv) or C (pooling)
  int kh, kw, sh, sw, ph, pw;
  int oh, ow;        // output plane
};

// ----------------------------------------------------------- linear (gemm.cu)
// y = act(x @ w.T + b); x (n, in), w (out, in), b (out,) or 0.
void linear_forward(Ptr x, Ptr w, Ptr b, Ptr y, int n, int in, int out, int act,
                    int dtype, Ptr stream, int device);
// dx (n, in), dw (out, in), db (out,); a zero pointer skips that gradient.
void linear_backward(Ptr gy, Ptr x, Ptr w, Ptr y, Ptr dx, Ptr dw, Ptr db, int n,
                     int in, int out, int act, int dtype, Ptr stream, int device);

// ----------------------------------------------------------- conv2d (conv.cu)
void conv2d_forward(Ptr x, Ptr w, Ptr b, Ptr y, const Geom& g, int act, int dtype,
                    Ptr stream, int device);
// How many sample-splits the weight-gradient reduction uses; the caller
// allocates a workspace of splits * (o*c*kh*kw + o) elements (none if 1).
int conv2d_backward_splits(const Geom& g, int device);
// With pool_idx != 0 this is conv2d_pool's backward: gy and y are the pooled
// (n, o, oh/pool_h, ow/pool_w) arrays and pool_idx the forward's indices.
void conv2d_backward(Ptr gy, Ptr x, Ptr w, Ptr y, Ptr dx, Ptr dw, Ptr db, Ptr ws,
                     int splits, const Geom& g, int act, int dtype, Ptr stream,
                     int device, Ptr pool_idx = 0, int pool_h = 0, int pool_w = 0);
// y = act(max_pool(conv2d(x, w) + b)) over non-overlapping pool_h x pool_w
// windows (pool_h * pool_w <= 4); idx: int64 argmax flat into the conv plane.
void conv2d_pool_forward(Ptr x, Ptr w, Ptr b, Ptr y, Ptr idx, const Geom& g, int act,
                         int pool_h, int pool_w, int dtype, Ptr stream, int device);

// ---------------------------------------------------------- pooling (pool.cu)
// indices: int64 flat h*W + w into each input plane.
void max_pool2d_forward(Ptr x, Ptr y, Ptr idx, const Geom& g, int dtype, Ptr stream,
                        int device);
void max_pool2d_backward(Ptr gy, Ptr idx, Ptr dx, const Geom& g, int dtype,
                         Ptr stream, int device);
void avg_pool2d_forward(Ptr x, Ptr y, const Geom& g, int dtype, Ptr stream, int device);
void avg_pool2d_backward(Ptr gy, Ptr dx, const Geom& g, int dtype, Ptr stream,
                         int device);

// ----------------------------------------------------- cross-entropy (loss.cu)
void cross_entropy_forward(Ptr logits, Ptr target, Ptr losses, Ptr probs, int n, int c,
                           double smoothing, int dtype, Ptr stream, int device);
void cross_entropy_backward(Ptr glosses, Ptr probs, Ptr target, Ptr dlogits, int n,
                            int c, double smoothing, int dtype, Ptr stream, int device);

// ------------------------------------------------------- optimizers (optim.cu)
void sgd_step(const std::vector<Ptr>& params, const std::vector<Ptr>& grads,
              const std::vector<Ptr>& bufs, const std::vector<long long>& sizes,
              double lr, double momentum, double dampening, bool nesterov,
              double weight_decay, bool first, int dtype, Ptr stream, int device);
void adam_step(const std::vector<Ptr>& params, const std::vector<Ptr>& grads,
               const std::vector<Ptr>& exp_avgs, const std::vector<Ptr>& exp_avg_sqs,
               const std::vector<long long>& sizes, long long step, double lr,
               double beta1, double beta2, double eps, double weight_decay,
               bool decoupled, int dtype, Ptr stream, int device);

// ------------------------------------------------------ BatchNorm (batchnorm.cu)
// x, y, gy, dx (n, c, s) of dtype; mean/invstd outputs and dw/db (c,) of dtype.
// The (c,) inputs may each be float32 or float64: bit kVec* of vec_f64 set
// means float64. A zero pointer: no weight / bias / running buffers (then no
// update), or a gradient not wanted.
enum VecBit { kVecWeight = 0, kVecBias = 1, kVecRunningMean = 2, kVecRunningVar = 3,
              kVecMean = 4, kVecInvstd = 5 };
// Train: batch statistics, running buffers updated in place (unbiased
// variance, factor f); eval: running statistics. Writes y, mean, invstd.
void batch_norm_forward(Ptr x, Ptr w, Ptr b, Ptr rm, Ptr rv, Ptr y, Ptr mean, Ptr invstd,
                        long long n, long long c, long long s, int vec_f64, bool training,
                        double factor, double eps, int dtype, Ptr stream, int device);
void batch_norm_backward(Ptr gy, Ptr x, Ptr w, Ptr mean, Ptr invstd, Ptr dx, Ptr dw, Ptr db,
                         long long n, long long c, long long s, int vec_f64, bool training,
                         int dtype, Ptr stream, int device);

// ------------------------------------------------------ runtime (runtime.cu)
long long launch_count();  // kernels launched through this module so far
// MINITL_CUDA_SYNC=1 debug mode (synchronize and check after every launch, not
// while the stream is being captured): 1 on, 0 off, -1 back to the variable.
bool sync_launches();
void set_sync_launches(int mode);
// Stream capture used to count every kernel of a training step (ours and
// CuPy's): begin on `stream`, run the step, end -> {kernel, memcpy, memset,
// other} node counts. The captured graph is discarded, never run.
void capture_begin(Ptr stream, int device);
std::vector<long long> capture_end(Ptr stream, int device);
std::vector<int> device_info(int device);  // {sm major, sm minor, SM count}

}  // namespace minitl_cuda
