// pybind11 binding of the CUDA kernels: minitl._C_cuda.
//
// Compiled by the host C++ compiler (no CUDA headers needed): every argument
// is a plain integer or float. Device pointers are `int(cupy_array.data.ptr)`,
// streams `cupy.cuda.get_current_stream().ptr`; minitl/kernels/cuda.py checks
// shapes, dtypes and contiguity before calling, and allocates every output
// with CuPy. A failed launch raises RuntimeError("minitl._C_cuda.<kernel>: ...").
// Importing the module makes no CUDA call, so it imports without a driver.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "minitl_cuda.h"

namespace py = pybind11;
namespace mc = minitl_cuda;

#ifndef MINITL_CUDA_ARCHS
#define MINITL_CUDA_ARCHS "unknown"
#endif
#ifndef MINITL_CUDA_SKIPPED
#define MINITL_CUDA_SKIPPED ""
#endif

namespace {

// (n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow) -> Geom
mc::Geom geom(const std::array<int, 13>& a) {
  return mc::Geom{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "minitl's fused CUDA kernels (device pointers in, CuPy owns the memory)";
  m.attr("ARCHS") = MINITL_CUDA_ARCHS;      // e.g. "75;80;86;89;90;compute_90"
  m.attr("SKIPPED") = MINITL_CUDA_SKIPPED;  // requested but unsupported by nvcc, e.g. "sm_70"
  auto nogil = py::call_guard<py::gil_scoped_release>();

  m.def("linear_forward", &mc::linear_forward, nogil, "y = act(x @ w.T + b)",
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("n"), py::arg("in_"),
        py::arg("out"), py::arg("act"), py::arg("dtype"), py::arg("stream"), py::arg("device"));
  m.def("linear_backward", &mc::linear_backward, nogil,
        "dx, dw, db of the fused linear (0 pointers skip a gradient)", py::arg("gy"),
        py::arg("x"), py::arg("w"), py::arg("y"), py::arg("dx"), py::arg("dw"), py::arg("db"),
        py::arg("n"), py::arg("in_"), py::arg("out"), py::arg("act"), py::arg("dtype"),
        py::arg("stream"), py::arg("device"));

  m.def("conv2d_forward",
        [](mc::Ptr x, mc::Ptr w, mc::Ptr b, mc::Ptr y, const std::array<int, 13>& g, int act,
           int dtype, mc::Ptr stream, int device) {
          mc::conv2d_forward(x, w, b, y, geom(g), act, dtype, stream, device);
        },
        nogil, "y = act(conv2d(x, w) + b); geom = (n,c,h,w,o,kh,kw,sh,sw,ph,pw,oh,ow)");
  m.def("conv2d_backward_splits",
        [](const std::array<int, 13>& g, int device) {
          return mc::conv2d_backward_splits(geom(g), device);
        },
        nogil, "sample splits of the dw reduction (workspace = splits*(o*c*kh*kw+o))");
  m.def("conv2d_backward",
        [](mc::Ptr gy, mc::Ptr x, mc::Ptr w, mc::Ptr y, mc::Ptr dx, mc::Ptr dw, mc::Ptr db,
           mc::Ptr ws, int splits, const std::array<int, 13>& g, int act, int dtype,
           mc::Ptr stream, int device, mc::Ptr pool_idx, int pool_h, int pool_w) {
          mc::conv2d_backward(gy, x, w, y, dx, dw, db, ws, splits, geom(g), act, dtype, stream,
                              device, pool_idx, pool_h, pool_w);
        },
        nogil,
        "dx, dw, db of the fused conv2d (0 pointers skip a gradient); with pool_idx, of "
        "conv2d_pool (gy, y pooled)",
        py::arg("gy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("dx"), py::arg("dw"),
        py::arg("db"), py::arg("ws"), py::arg("splits"), py::arg("geom"), py::arg("act"),
        py::arg("dtype"), py::arg("stream"), py::arg("device"), py::arg("pool_idx") = 0,
        py::arg("pool_h") = 0, py::arg("pool_w") = 0);
  m.def("conv2d_pool_forward",
        [](mc::Ptr x, mc::Ptr w, mc::Ptr b, mc::Ptr y, mc::Ptr idx, const std::array<int, 13>& g,
           int act, int pool_h, int pool_w, int dtype, mc::Ptr stream, int device) {
          mc::conv2d_pool_forward(x, w, b, y, idx, geom(g), act, pool_h, pool_w, dtype, stream,
                                  device);
        },
        nogil, "y = act(max_pool(conv2d(x, w) + b)), idx into the conv plane (pool <= 4)");

  m.def("max_pool2d_forward",
        [](mc::Ptr x, mc::Ptr y, mc::Ptr idx, const std::array<int, 13>& g, int dtype,
           mc::Ptr stream, int device) {
          mc::max_pool2d_forward(x, y, idx, geom(g), dtype, stream, device);
        },
        nogil, "max over windows; int64 indices h*W+w into each plane");
  m.def("max_pool2d_backward",
        [](mc::Ptr gy, mc::Ptr idx, mc::Ptr dx, const std::array<int, 13>& g, int dtype,
           mc::Ptr stream, int device) {
          mc::max_pool2d_backward(gy, idx, dx, geom(g), dtype, stream, device);
        },
        nogil);
  m.def("avg_pool2d_forward",
        [](mc::Ptr x, mc::Ptr y, const std::array<int, 13>& g, int dtype, mc::Ptr stream,
           int device) { mc::avg_pool2d_forward(x, y, geom(g), dtype, stream, device); },
        nogil);
  m.def("avg_pool2d_backward",
        [](mc::Ptr gy, mc::Ptr dx, const std::array<int, 13>& g, int dtype, mc::Ptr stream,
           int device) { mc::avg_pool2d_backward(gy, dx, geom(g), dtype, stream, device); },
        nogil);

  m.def("cross_entropy_forward", &mc::cross_entropy_forward, nogil,
        "per-sample losses (n,) and probabilities (n, c)");
  m.def("cross_entropy_backward", &mc::cross_entropy_backward, nogil);
  m.def("sgd_step", &mc::sgd_step, nogil, "in-place SGD over lists of device pointers");
  m.def("adam_step", &mc::adam_step, nogil, "in-place Adam/AdamW over lists of device pointers");

  m.def("batch_norm_forward", &mc::batch_norm_forward, nogil,
        "y, mean, invstd of BatchNorm over x (n, c, s); train updates the running buffers",
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("y"), py::arg("mean"), py::arg("invstd"), py::arg("n"), py::arg("c"), py::arg("s"),
        py::arg("vec_f64"), py::arg("training"), py::arg("factor"), py::arg("eps"),
        py::arg("dtype"), py::arg("stream"), py::arg("device"));
  m.def("batch_norm_backward", &mc::batch_norm_backward, nogil,
        "dx, dweight, dbias of BatchNorm (0 pointers skip a gradient)", py::arg("gy"),
        py::arg("x"), py::arg("w"), py::arg("mean"), py::arg("invstd"), py::arg("dx"),
        py::arg("dw"), py::arg("db"), py::arg("n"), py::arg("c"), py::arg("s"),
        py::arg("vec_f64"), py::arg("training"), py::arg("dtype"), py::arg("stream"),
        py::arg("device"));

  m.def("launch_count", &mc::launch_count, "kernels launched through this module so far");
  m.def("sync_launches", &mc::sync_launches,
        "whether every launch is synchronized and checked (MINITL_CUDA_SYNC=1)");
  m.def("set_sync_launches", &mc::set_sync_launches, py::arg("mode"),
        "1: synchronize and check after every launch; 0: do not; -1: follow MINITL_CUDA_SYNC");
  m.def("capture_begin", &mc::capture_begin, nogil,
        "begin a relaxed stream capture (to count a step's kernels)");
  m.def("capture_end", &mc::capture_end, nogil,
        "end the capture; returns [kernel, memcpy, memset, other] node counts");
  m.def("device_info", &mc::device_info, nogil, "[cc major, cc minor, SM count]");
}
