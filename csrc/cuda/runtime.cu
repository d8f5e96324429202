// Module-wide runtime helpers: the launch counter, the SM-count cache, the
// MINITL_CUDA_SYNC=1 debug mode, and stream capture used to count every
// kernel in a training step.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace minitl_cuda {

namespace {
std::atomic<long long> g_launches{0};
std::mutex g_sm_mutex;
std::vector<int> g_sm_counts;  // indexed by device id; 0 = not queried yet
std::atomic<int> g_sync{-1};   // MINITL_CUDA_SYNC: -1 = not read yet, 0 off, 1 on

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0 && std::strcmp(v, "false") != 0 &&
         std::strcmp(v, "no") != 0;
}
}  // namespace

void count_launch() { g_launches.fetch_add(1, std::memory_order_relaxed); }

// Read once, at the first launch (like CUDA_LAUNCH_BLOCKING), so the check on
// every launch is one atomic load.
bool sync_launches() {
  int v = g_sync.load(std::memory_order_relaxed);
  if (v < 0) {
    v = env_on("MINITL_CUDA_SYNC") ? 1 : 0;
    g_sync.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

void set_sync_launches(int mode) { g_sync.store(mode < 0 ? -1 : (mode ? 1 : 0)); }

void sync_after_launch(const char* kernel, cudaStream_t stream) {
  // A stream being captured into a CUDA graph must not be synchronized (that
  // invalidates the capture), and its kernels have not run yet anyway.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check_call(cudaStreamIsCapturing(stream, &capture), kernel);
  if (capture != cudaStreamCaptureStatusNone) return;
  cudaError_t err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // reported here; the next launch is not to blame
    raise_cuda(kernel, err, " (inside the kernel; found by MINITL_CUDA_SYNC=1)");
  }
}

long long launch_count() { return g_launches.load(std::memory_order_relaxed); }

int sm_count() {
  int dev = 0;
  check_call(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(g_sm_mutex);
  if (static_cast<int>(g_sm_counts.size()) <= dev) g_sm_counts.resize(dev + 1, 0);
  if (g_sm_counts[dev] == 0) {
    int count = 0;
    check_call(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev),
               "cudaDeviceGetAttribute");
    g_sm_counts[dev] = count > 0 ? count : 1;
  }
  return g_sm_counts[dev];
}

std::vector<int> device_info(int device) {
  const DeviceGuard guard(device);
  int major = 0, minor = 0;
  check_call(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
             "cudaDeviceGetAttribute");
  check_call(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
             "cudaDeviceGetAttribute");
  return {major, minor, sm_count()};
}

// Relaxed mode: CuPy's memory pool may call cudaMalloc while a step is being
// captured; that is legal in relaxed mode and the graph is never launched.
void capture_begin(Ptr stream, int device) {
  const DeviceGuard guard(device);
  check_call(cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeRelaxed),
             "capture_begin");
}

std::vector<long long> capture_end(Ptr stream, int device) {
  const DeviceGuard guard(device);
  cudaGraph_t graph = nullptr;
  check_call(cudaStreamEndCapture(as_stream(stream), &graph), "capture_end");
  std::vector<long long> counts(4, 0);  // kernel, memcpy, memset, other
  size_t n = 0;
  cudaError_t err = cudaGraphGetNodes(graph, nullptr, &n);
  std::vector<cudaGraphNode_t> nodes(n);
  if (err == cudaSuccess && n > 0) err = cudaGraphGetNodes(graph, nodes.data(), &n);
  for (size_t i = 0; err == cudaSuccess && i < n; ++i) {
    cudaGraphNodeType type;
    err = cudaGraphNodeGetType(nodes[i], &type);
    if (err != cudaSuccess) break;
    if (type == cudaGraphNodeTypeKernel) {
      ++counts[0];
    } else if (type == cudaGraphNodeTypeMemcpy) {
      ++counts[1];
    } else if (type == cudaGraphNodeTypeMemset) {
      ++counts[2];
    } else {
      ++counts[3];
    }
  }
  cudaGraphDestroy(graph);
  check_call(err, "capture_end (counting graph nodes)");
  return counts;
}

}  // namespace minitl_cuda
