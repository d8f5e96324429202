// Fused conv2d + bias + activation + non-overlapping max-pool (LeNet's
// conv -> relu -> maxpool2x2 block as one op).
//
// Forward pools the pre-activation z = conv(x, w) while it is still in
// cache, then applies bias and activation to the pooled values only (a
// quarter of them for 2x2). Since the bias is constant over a plane and the
// activations are monotone, act(maxpool(z) + b) == maxpool(act(z + b)); the
// indices are those of maxpool(z), ties going to the first in the window.
// Backward never needs the full-size output: the gradient reaches only the
// argmax positions, where act' is taken from the pooled output y.
// Reference composite: minitl/kernels/fused_reference.py.
//
// This file checks arguments and allocates; the compute (conv_impl.h) runs
// in the active instruction-set variant (isa.h).
#include "conv_args.h"

namespace minitl {

namespace {

constexpr const char* kFwd = "conv2d_pool_forward";
constexpr const char* kBwd = "conv2d_pool_backward";

PoolDims pool_dims(const char* op, const ConvGeom& g, const py::object& pool) {
    PoolDims d{};
    pair(pool, op, "pool", d.kh, d.kw, 1);
    if (g.OH < d.kh || g.OW < d.kw)
        fail_value(std::string(op) + ": pool (" + std::to_string(d.kh) + ", " + std::to_string(d.kw) +
                   ") is larger than the conv output (" + std::to_string(g.OH) + ", " +
                   std::to_string(g.OW) + ")");
    d.PH = g.OH / d.kh;
    d.PW = g.OW / d.kw;
    return d;
}

template <class T>
py::tuple forward(py::handle xh, py::handle wh, py::handle bh, py::object stride,
                  py::object padding, Act act, py::object pool) {
    auto x = input<T>(xh, 4, kFwd, "x", "(N, C, H, W)");
    auto w = input<T>(wh, 4, kFwd, "w", "(O, C, kh, kw)");
    ConvGeom g = conv_geom<T>(kFwd, x, w, stride, padding);
    PoolDims d = pool_dims(kFwd, g, pool);
    py::object keep_b;
    const T* b = conv_bias<T>(kFwd, bh, g.O, keep_b);
    auto y = empty<T>({g.N, g.O, d.PH, d.PW});
    auto idx = empty<std::int32_t>({g.N, g.O, d.PH, d.PW});
    T* yp = y.mutable_data();
    std::int32_t* ip = idx.mutable_data();
    const T *xp = x.data(), *wp = w.data();
    {
        py::gil_scoped_release nogil;
        ops<T>().conv_pool_forward(g, d, xp, wp, b, act, yp, ip);
    }
    return py::make_tuple(y, idx);
}

template <class T>
py::tuple backward(py::handle gyh, py::handle xh, py::handle wh, py::handle yh, py::handle ih,
                   py::object stride, py::object padding, Act act, py::object pool, bool need_dx,
                   bool need_dw, bool need_db) {
    auto x = input<T>(xh, 4, kBwd, "x", "(N, C, H, W)");
    auto w = input<T>(wh, 4, kBwd, "w", "(O, C, kh, kw)");
    ConvGeom g = conv_geom<T>(kBwd, x, w, stride, padding);
    PoolDims d = pool_dims(kBwd, g, pool);
    const char* why = "(the pooled conv output for x and w)";
    auto gy = input<T>(gyh, 4, kBwd, "gy", "(N, O, PH, PW)");
    expect_shape4(kBwd, "gy", gy, g.N, g.O, d.PH, d.PW, why);
    py::array_t<T, py::array::c_style> y;
    if (act != Act::None) {
        y = input<T>(yh, 4, kBwd, "y", "(N, O, PH, PW)");
        expect_shape4(kBwd, "y", y, g.N, g.O, d.PH, d.PW, why);
    }
    py::array ia = ndarray(ih, kBwd, "indices");
    if (ia.dtype().kind() != 'i' && ia.dtype().kind() != 'u')
        fail_type(std::string(kBwd) + ": indices must be integers, got " + std::string(py::str(ia.dtype())));
    expect_shape4(kBwd, "indices", ia, g.N, g.O, d.PH, d.PW, why);
    // int32 (what forward returns) is read as is; other integer types as int64.
    const bool i32 = ia.dtype().is(py::dtype::of<std::int32_t>());
    py::array idx = i32 ? py::array(contig<std::int32_t>(ia))
                        : py::array(py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(ia));

    py::object dx = py::none(), dw = py::none(), db = py::none();
    if (!(need_dx || need_dw || need_db)) return py::make_tuple(dx, dw, db);
    T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
    if (need_dx) { auto a = empty<T>({g.N, g.C, g.H, g.W}); dxp = a.mutable_data(); dx = a; }
    if (need_dw) { auto a = empty<T>({g.O, g.C, g.KH, g.KW}); dwp = a.mutable_data(); dw = a; }
    if (need_db) { auto a = empty<T>({g.O}); dbp = a.mutable_data(); db = a; }
    const T *xp = x.data(), *wp = w.data(), *gyp = gy.data();
    const T* yp = act != Act::None ? y.data() : nullptr;
    const void* ixp = idx.data();
    bool ok;
    {
        py::gil_scoped_release nogil;
        ok = ops<T>().conv_pool_backward(g, d, gyp, xp, wp, yp, ixp, i32, act, dxp, dwp, dbp);
    }
    if (!ok)
        throw py::index_error(std::string(kBwd) + ": an index lies outside the " +
                              std::to_string(g.OH) + "x" + std::to_string(g.OW) + " conv output plane");
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void register_conv_pool(py::module_& m) {
    m.def(
        "conv2d_pool_forward",
        [](py::handle x, py::handle w, py::handle b, py::object stride, py::object padding,
           py::object activation, py::object pool) -> py::tuple {
            Act act = parse_act(activation, kFwd);
            return is_f64(ndarray(x, kFwd, "x"), kFwd, "x")
                       ? forward<double>(x, w, b, stride, padding, act, pool)
                       : forward<float>(x, w, b, stride, padding, act, pool);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride") = py::make_tuple(1, 1),
        py::arg("padding") = py::make_tuple(0, 0), py::arg("activation") = py::none(),
        py::arg("pool") = py::make_tuple(2, 2),
        "(y, indices): y = maxpool(act(conv2d(x, w) + b)) over non-overlapping `pool` windows;\n"
        "indices int32, flat into the conv output plane (OH*OW).");
    m.def(
        "conv2d_pool_backward",
        [](py::handle gy, py::handle x, py::handle w, py::handle y, py::handle indices,
           py::object stride, py::object padding, py::object activation, py::object pool,
           py::object needs) -> py::tuple {
            Act act = parse_act(activation, kBwd);
            bool a, b, c;
            needs3(needs, a, b, c);
            return is_f64(ndarray(x, kBwd, "x"), kBwd, "x")
                       ? backward<double>(gy, x, w, y, indices, stride, padding, act, pool, a, b, c)
                       : backward<float>(gy, x, w, y, indices, stride, padding, act, pool, a, b, c);
        },
        py::arg("gy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("indices"),
        py::arg("stride") = py::make_tuple(1, 1), py::arg("padding") = py::make_tuple(0, 0),
        py::arg("activation") = py::none(), py::arg("pool") = py::make_tuple(2, 2),
        py::arg("needs") = py::make_tuple(true, true, true),
        "Gradients (dx, dw, db) of conv2d_pool_forward; None where needs says so.");
}

}  // namespace minitl
