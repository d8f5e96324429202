// Argument checks shared by the conv2d and fused conv2d+pool bindings.
#pragma once

#include "array.h"
#include "isa.h"

namespace minitl {

// Geometry of x (N, C, H, W) convolved with w (O, C, kh, kw); raises on any mismatch.
template <class T>
ConvGeom conv_geom(const char* op, const py::array_t<T, py::array::c_style>& x,
                   const py::array_t<T, py::array::c_style>& w, const py::object& stride,
                   const py::object& padding) {
    ConvGeom g{};
    g.N = x.shape(0); g.C = x.shape(1); g.H = x.shape(2); g.W = x.shape(3);
    g.O = w.shape(0); g.KH = w.shape(2); g.KW = w.shape(3);
    if (w.shape(1) != g.C)
        fail_value(std::string(op) + ": w " + shape_str(w) + " expects " +
                   std::to_string(w.shape(1)) + " input channels but x " + shape_str(x) +
                   " has " + std::to_string(g.C));
    if (g.KH < 1 || g.KW < 1) fail_value(std::string(op) + ": empty kernel in w " + shape_str(w));
    pair(stride, op, "stride", g.sh, g.sw, 1);
    pair(padding, op, "padding", g.ph, g.pw, 0);
    g.OH = (g.H + 2 * g.ph - g.KH) / g.sh + 1;
    g.OW = (g.W + 2 * g.pw - g.KW) / g.sw + 1;
    if (g.H + 2 * g.ph < g.KH || g.W + 2 * g.pw < g.KW)
        fail_value(std::string(op) + ": kernel " + shape_str(w) + " is larger than the padded input " +
                   shape_str(x) + " with padding (" + std::to_string(g.ph) + ", " +
                   std::to_string(g.pw) + ")");
    return g;
}

template <class T>
const T* conv_bias(const char* op, py::handle bh, i64 O, py::object& keep) {
    if (bh.is_none()) return nullptr;
    auto b = input<T>(bh, 1, op, "b", "(out_channels,)");
    if (b.shape(0) != O)
        fail_value(std::string(op) + ": b " + shape_str(b) + " must have shape (" +
                   std::to_string(O) + ",) to match w");
    keep = b;
    return b.data();
}

// Checks an array against an expected NCHW shape.
inline void expect_shape4(const char* op, const char* name, const py::array& a, i64 n, i64 c,
                          i64 h, i64 w, const char* why) {
    if (a.ndim() != 4 || a.shape(0) != n || a.shape(1) != c || a.shape(2) != h || a.shape(3) != w)
        fail_value(std::string(op) + ": " + name + " " + shape_str(a) + " must have shape (" +
                   std::to_string(n) + ", " + std::to_string(c) + ", " + std::to_string(h) + ", " +
                   std::to_string(w) + ") " + why);
}

}  // namespace minitl
