// Max- and average-pooling (no padding, floor mode), forward and backward.
// Planes (n, c) are independent, so they are spread over threads.
#include "pool.h"

#include <cstring>

#include "array.h"

namespace minitl {

namespace {

struct PoolGeom {
    i64 N, C, H, W, kh, kw, sh, sw, OH, OW;
    i64 planes() const { return N * C; }
};

PoolGeom pool_geom(const char* op, i64 n, i64 c, i64 h, i64 w, const py::object& kernel,
                   const py::object& stride, const std::string& what) {
    PoolGeom g{n, c, h, w, 0, 0, 0, 0, 0, 0};
    pair(kernel, op, "kernel_size", g.kh, g.kw, 1);
    pair(stride, op, "stride", g.sh, g.sw, 1);
    if (h < g.kh || w < g.kw)
        fail_value(std::string(op) + ": window (" + std::to_string(g.kh) + ", " +
                   std::to_string(g.kw) + ") is larger than " + what);
    g.OH = (h - g.kh) / g.sh + 1;
    g.OW = (w - g.kw) / g.sw + 1;
    return g;
}

// (N, C, H, W) from a Python sequence of four ints.
void shape4(const char* op, const py::object& s, i64 (&out)[4]) {
    py::sequence seq = s.cast<py::sequence>();
    if (seq.size() != 4) fail_value(std::string(op) + ": x_shape must be (N, C, H, W)");
    for (int i = 0; i < 4; ++i) {
        out[i] = seq[i].cast<i64>();
        if (out[i] < 0) fail_value(std::string(op) + ": x_shape has a negative size");
    }
}

std::string dims(i64 a, i64 b, i64 c, i64 d) {
    return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ", " +
           std::to_string(d) + ")";
}

template <class T>
py::tuple max_forward(py::handle xh, py::object kernel, py::object stride) {
    const char* op = "max_pool2d_forward";
    auto x = input<T>(xh, 4, op, "x", "(N, C, H, W)");
    PoolGeom g = pool_geom(op, x.shape(0), x.shape(1), x.shape(2), x.shape(3), kernel, stride,
                           "x " + shape_str(x));
    auto y = empty<T>({g.N, g.C, g.OH, g.OW});
    auto idx = empty<std::int32_t>({g.N, g.C, g.OH, g.OW});
    const T* xp = x.data();
    T* yp = y.mutable_data();
    std::int32_t* ip = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        const i64 in = g.H * g.W, out = g.OH * g.OW;
        [[maybe_unused]] const int nt = threads_for(double(g.planes()) * out * g.kh * g.kw);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 p = 0; p < g.planes(); ++p)
            max_pool_plane(xp + p * in, g.W, g.kh, g.kw, g.sh, g.sw, g.OH, g.OW, yp + p * out,
                           ip + p * out, g.W);
    }
    return py::make_tuple(y, idx);
}

// dx = zeros; dx[plane][idx] += gy, accumulating where windows overlap.
template <class T, class I>
bool scatter(const T* gy, const I* idx, const PoolGeom& g, T* dx) {
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    bool bad = false;
    [[maybe_unused]] const int nt = threads_for(double(g.planes()) * (in + out));
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static) reduction(|| : bad)
#endif
    for (i64 p = 0; p < g.planes(); ++p) {
        T* d = dx + p * in;
        std::memset(d, 0, in * sizeof(T));
        const T* gp = gy + p * out;
        const I* ix = idx + p * out;
        for (i64 k = 0; k < out; ++k) {
            const i64 at = static_cast<i64>(ix[k]);
            if (at < 0 || at >= in) { bad = true; continue; }
            d[at] += gp[k];
        }
    }
    return !bad;
}

template <class T>
py::object max_backward(py::handle gyh, py::handle ih, py::object x_shape, py::object kernel,
                        py::object stride) {
    const char* op = "max_pool2d_backward";
    i64 s[4];
    shape4(op, x_shape, s);
    auto gy = input<T>(gyh, 4, op, "gy", "(N, C, OH, OW)");
    PoolGeom g = pool_geom(op, s[0], s[1], s[2], s[3], kernel, stride,
                           "x_shape " + dims(s[0], s[1], s[2], s[3]));
    if (gy.shape(0) != g.N || gy.shape(1) != g.C || gy.shape(2) != g.OH || gy.shape(3) != g.OW)
        fail_value(std::string(op) + ": gy " + shape_str(gy) + " must have shape " +
                   dims(g.N, g.C, g.OH, g.OW) + " for x_shape " + dims(s[0], s[1], s[2], s[3]));
    py::array ia = ndarray(ih, op, "indices");
    if (ia.dtype().kind() != 'i' && ia.dtype().kind() != 'u')
        fail_type(std::string(op) + ": indices must be integers, got " +
                  std::string(py::str(ia.dtype())));
    if (ia.ndim() != 4 || ia.shape(0) != g.N || ia.shape(1) != g.C || ia.shape(2) != g.OH ||
        ia.shape(3) != g.OW)
        fail_value(std::string(op) + ": indices " + shape_str(ia) + " must have the shape of gy " +
                   shape_str(gy));
    auto dx = empty<T>({g.N, g.C, g.H, g.W});
    T* dxp = dx.mutable_data();
    bool ok;
    if (ia.dtype().is(py::dtype::of<std::int32_t>())) {
        auto i32 = contig<std::int32_t>(ia);
        py::gil_scoped_release nogil;
        ok = scatter(gy.data(), i32.data(), g, dxp);
    } else {
        auto i64a = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(ia);
        py::gil_scoped_release nogil;
        ok = scatter(gy.data(), i64a.data(), g, dxp);
    }
    if (!ok)
        throw py::index_error(std::string(op) + ": an index lies outside the " +
                              std::to_string(g.H) + "x" + std::to_string(g.W) + " input plane");
    return dx;
}

template <class T>
py::object avg_forward(py::handle xh, py::object kernel, py::object stride) {
    const char* op = "avg_pool2d_forward";
    auto x = input<T>(xh, 4, op, "x", "(N, C, H, W)");
    PoolGeom g = pool_geom(op, x.shape(0), x.shape(1), x.shape(2), x.shape(3), kernel, stride,
                           "x " + shape_str(x));
    auto y = empty<T>({g.N, g.C, g.OH, g.OW});
    const T* xp = x.data();
    T* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        const i64 in = g.H * g.W, out = g.OH * g.OW;
        const T scale = T(1) / T(g.kh * g.kw);
        [[maybe_unused]] const int nt = threads_for(double(g.planes()) * out * g.kh * g.kw);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 p = 0; p < g.planes(); ++p) {
            const T* xs = xp + p * in;
            T* ys = yp + p * out;
            for (i64 oh = 0; oh < g.OH; ++oh)
                for (i64 ow = 0; ow < g.OW; ++ow) {
                    const T* w0 = xs + oh * g.sh * g.W + ow * g.sw;
                    T s = T(0);
                    for (i64 i = 0; i < g.kh; ++i)
                        for (i64 j = 0; j < g.kw; ++j) s += w0[i * g.W + j];
                    ys[oh * g.OW + ow] = s * scale;
                }
        }
    }
    return y;
}

template <class T>
py::object avg_backward(py::handle gyh, py::object x_shape, py::object kernel, py::object stride) {
    const char* op = "avg_pool2d_backward";
    i64 s[4];
    shape4(op, x_shape, s);
    auto gy = input<T>(gyh, 4, op, "gy", "(N, C, OH, OW)");
    PoolGeom g = pool_geom(op, s[0], s[1], s[2], s[3], kernel, stride,
                           "x_shape " + dims(s[0], s[1], s[2], s[3]));
    if (gy.shape(0) != g.N || gy.shape(1) != g.C || gy.shape(2) != g.OH || gy.shape(3) != g.OW)
        fail_value(std::string(op) + ": gy " + shape_str(gy) + " must have shape " +
                   dims(g.N, g.C, g.OH, g.OW) + " for x_shape " + dims(s[0], s[1], s[2], s[3]));
    auto dx = empty<T>({g.N, g.C, g.H, g.W});
    const T* gp = gy.data();
    T* dxp = dx.mutable_data();
    {
        py::gil_scoped_release nogil;
        const i64 in = g.H * g.W, out = g.OH * g.OW;
        const T scale = T(1) / T(g.kh * g.kw);
        [[maybe_unused]] const int nt = threads_for(double(g.planes()) * (in + out * g.kh * g.kw));
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 p = 0; p < g.planes(); ++p) {
            T* d = dxp + p * in;
            std::memset(d, 0, in * sizeof(T));
            const T* gs = gp + p * out;
            for (i64 oh = 0; oh < g.OH; ++oh)
                for (i64 ow = 0; ow < g.OW; ++ow) {
                    const T v = gs[oh * g.OW + ow] * scale;
                    T* w0 = d + oh * g.sh * g.W + ow * g.sw;
                    for (i64 i = 0; i < g.kh; ++i)
                        for (i64 j = 0; j < g.kw; ++j) w0[i * g.W + j] += v;
                }
        }
    }
    return dx;
}

bool f64_of(py::handle h, const char* op, const char* name) { return is_f64(ndarray(h, op, name), op, name); }

}  // namespace

void register_pool(py::module_& m) {
    m.def(
        "max_pool2d_forward",
        [](py::handle x, py::object k, py::object s) {
            return f64_of(x, "max_pool2d_forward", "x") ? max_forward<double>(x, k, s)
                                                        : max_forward<float>(x, k, s);
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"),
        "Max over each window: (y, indices int32 flat into the H*W plane).");
    m.def(
        "max_pool2d_backward",
        [](py::handle gy, py::handle idx, py::object xs, py::object k, py::object s) {
            return f64_of(gy, "max_pool2d_backward", "gy") ? max_backward<double>(gy, idx, xs, k, s)
                                                           : max_backward<float>(gy, idx, xs, k, s);
        },
        py::arg("gy"), py::arg("indices"), py::arg("x_shape"), py::arg("kernel_size"),
        py::arg("stride"), "Route each output gradient to its window's maximum.");
    m.def(
        "avg_pool2d_forward",
        [](py::handle x, py::object k, py::object s) {
            return f64_of(x, "avg_pool2d_forward", "x") ? avg_forward<double>(x, k, s)
                                                        : avg_forward<float>(x, k, s);
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), "Mean over each window.");
    m.def(
        "avg_pool2d_backward",
        [](py::handle gy, py::object xs, py::object k, py::object s) {
            return f64_of(gy, "avg_pool2d_backward", "gy") ? avg_backward<double>(gy, xs, k, s)
                                                           : avg_backward<float>(gy, xs, k, s);
        },
        py::arg("gy"), py::arg("x_shape"), py::arg("kernel_size"), py::arg("stride"),
        "Spread each output gradient evenly over its window.");
}

}  // namespace minitl
