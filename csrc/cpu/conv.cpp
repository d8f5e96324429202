// conv2d with bias and activation fused, forward and backward. This file
// checks arguments and allocates; the compute (conv_impl.h) runs in the
// active instruction-set variant (isa.h).
#include "conv_args.h"

namespace minitl {

namespace {

constexpr const char* kFwd = "conv2d_forward";
constexpr const char* kBwd = "conv2d_backward";

template <class T>
py::object forward(py::handle xh, py::handle wh, py::handle bh, py::object stride,
                   py::object padding, Act act) {
    auto x = input<T>(xh, 4, kFwd, "x", "(N, C, H, W)");
    auto w = input<T>(wh, 4, kFwd, "w", "(O, C, kh, kw)");
    ConvGeom g = conv_geom<T>(kFwd, x, w, stride, padding);
    py::object keep_b;
    const T* b = conv_bias<T>(kFwd, bh, g.O, keep_b);
    auto y = empty<T>({g.N, g.O, g.OH, g.OW});
    T* yp = y.mutable_data();
    const T *xp = x.data(), *wp = w.data();
    {
        py::gil_scoped_release nogil;
        ops<T>().conv_forward(g, xp, wp, b, act, yp);
    }
    return y;
}

template <class T>
py::tuple backward(py::handle gyh, py::handle xh, py::handle wh, py::handle yh,
                   py::object stride, py::object padding, Act act, bool need_dx, bool need_dw,
                   bool need_db) {
    auto x = input<T>(xh, 4, kBwd, "x", "(N, C, H, W)");
    auto w = input<T>(wh, 4, kBwd, "w", "(O, C, kh, kw)");
    ConvGeom g = conv_geom<T>(kBwd, x, w, stride, padding);
    auto gy = input<T>(gyh, 4, kBwd, "gy", "(N, O, OH, OW)");
    expect_shape4(kBwd, "gy", gy, g.N, g.O, g.OH, g.OW, "(the conv output for x and w)");
    py::array_t<T, py::array::c_style> y;
    if (act != Act::None) {
        y = input<T>(yh, 4, kBwd, "y", "(N, O, OH, OW)");
        expect_shape4(kBwd, "y", y, g.N, g.O, g.OH, g.OW, "(the conv output for x and w)");
    }
    py::object dx = py::none(), dw = py::none(), db = py::none();
    // A frozen layer whose input needs no gradient costs nothing here.
    if (!(need_dx || need_dw || need_db)) return py::make_tuple(dx, dw, db);
    T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
    if (need_dx) { auto a = empty<T>({g.N, g.C, g.H, g.W}); dxp = a.mutable_data(); dx = a; }
    if (need_dw) { auto a = empty<T>({g.O, g.C, g.KH, g.KW}); dwp = a.mutable_data(); dw = a; }
    if (need_db) { auto a = empty<T>({g.O}); dbp = a.mutable_data(); db = a; }
    const T *xp = x.data(), *wp = w.data(), *gyp = gy.data();
    const T* yp = act != Act::None ? y.data() : nullptr;
    {
        py::gil_scoped_release nogil;
        ops<T>().conv_backward(g, gyp, xp, wp, yp, act, dxp, dwp, dbp);
    }
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void register_conv(py::module_& m) {
    m.def(
        "conv2d_forward",
        [](py::handle x, py::handle w, py::handle b, py::object stride, py::object padding,
           py::object activation) -> py::object {
            Act act = parse_act(activation, kFwd);
            return is_f64(ndarray(x, kFwd, "x"), kFwd, "x")
                       ? forward<double>(x, w, b, stride, padding, act)
                       : forward<float>(x, w, b, stride, padding, act);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride") = py::make_tuple(1, 1),
        py::arg("padding") = py::make_tuple(0, 0), py::arg("activation") = py::none(),
        "y = act(conv2d(x, w) + b); x (N, C, H, W), w (O, C, kh, kw), b (O,) or None.");
    m.def(
        "conv2d_backward",
        [](py::handle gy, py::handle x, py::handle w, py::handle y, py::object stride,
           py::object padding, py::object activation, py::object needs) -> py::tuple {
            Act act = parse_act(activation, kBwd);
            bool a, b, c;
            needs3(needs, a, b, c);
            return is_f64(ndarray(x, kBwd, "x"), kBwd, "x")
                       ? backward<double>(gy, x, w, y, stride, padding, act, a, b, c)
                       : backward<float>(gy, x, w, y, stride, padding, act, a, b, c);
        },
        py::arg("gy"), py::arg("x"), py::arg("w"), py::arg("y"),
        py::arg("stride") = py::make_tuple(1, 1), py::arg("padding") = py::make_tuple(0, 0),
        py::arg("activation") = py::none(), py::arg("needs") = py::make_tuple(true, true, true),
        "Gradients (dx, dw, db) of the fused conv2d; None where needs says so.");
}

}  // namespace minitl
