// Fully connected layer: y = act(x @ w.T + b) and its backward, fused. This
// file checks arguments and allocates; the compute (linear_impl.h) runs in
// the active instruction-set variant (isa.h).
#include "array.h"
#include "isa.h"

namespace minitl {

namespace {

constexpr const char* kFwd = "linear_forward";
constexpr const char* kBwd = "linear_backward";
constexpr const char* kBwdAcc = "linear_backward_acc";

struct LinearArgs {
    i64 n, in, out;
};

// Checks x (N, in), w (out, in) and b (out,) against each other.
template <class T>
LinearArgs check_linear(const char* op, const py::array_t<T, py::array::c_style>& x,
                        const py::array_t<T, py::array::c_style>& w) {
    LinearArgs a{x.shape(0), x.shape(1), w.shape(0)};
    if (w.shape(1) != a.in)
        fail_value(std::string(op) + ": x " + shape_str(x) + " and w " + shape_str(w) +
                   " disagree on in_features (x.shape[1] must equal w.shape[1])");
    return a;
}

template <class T>
const T* bias_ptr(const char* op, py::handle bh, i64 out, py::object& keep) {
    if (bh.is_none()) return nullptr;
    auto b = input<T>(bh, 1, op, "b", "(out,)");
    if (b.shape(0) != out)
        fail_value(std::string(op) + ": b " + shape_str(b) + " must have shape (" +
                   std::to_string(out) + ",) to match w");
    keep = b;
    return b.data();
}

template <class T>
py::object forward(py::handle xh, py::handle wh, py::handle bh, Act act) {
    auto x = input<T>(xh, 2, kFwd, "x", "(N, in_features)");
    auto w = input<T>(wh, 2, kFwd, "w", "(out_features, in_features)");
    LinearArgs s = check_linear<T>(kFwd, x, w);
    py::object keep_b;
    const T* b = bias_ptr<T>(kFwd, bh, s.out, keep_b);
    auto y = empty<T>({s.n, s.out});
    T* yp = y.mutable_data();
    const T *xp = x.data(), *wp = w.data();
    {
        py::gil_scoped_release nogil;
        ops<T>().linear_forward(s.n, s.in, s.out, xp, wp, b, act, yp);
    }
    return y;
}

// An array a gradient is added into: dtype T, the gradient's exact shape,
// writable, C-contiguous (updated in place, so no converted copy will do), and
// sharing no memory with the inputs the kernel reads while it writes.
template <class T>
T* accumulator(py::handle h, const char* name, const std::vector<i64>& shape,
               std::initializer_list<const py::array*> reads) {
    py::array a = ndarray(h, kBwdAcc, name);
    expect_dtype<T>(a, kBwdAcc, name);
    bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t d = 0; same && d < shape.size(); ++d) same = a.shape(d) == shape[d];
    const std::string want = shape.size() == 1 ? "(" + std::to_string(shape[0]) + ",)"
                                               : "(" + std::to_string(shape[0]) + ", " +
                                                     std::to_string(shape[1]) + ")";
    if (!same)
        fail_value(std::string(kBwdAcc) + ": " + name + " " + shape_str(a) + " must have shape " +
                   want + ", the gradient it accumulates");
    if (!(a.flags() & py::array::c_style) || !a.writeable())
        fail_value(std::string(kBwdAcc) + ": " + name + " " + shape_str(a) +
                   " must be writable and C-contiguous to be added into in place");
    const char* lo = static_cast<const char*>(a.data());
    const char* hi = lo + a.nbytes();
    for (const py::array* r : reads) {
        const char* rlo = static_cast<const char*>(r->data());
        if (r->size() && a.size() && rlo < hi && lo < rlo + r->nbytes())
            fail_value(std::string(kBwdAcc) + ": " + name + " shares memory with an input (gy, x, "
                       "w or y); pass a separate array");
    }
    return static_cast<T*>(a.mutable_data());
}

// dw_acc / db_acc: None (a fresh array) or an array the gradient is added into
// and returned (linear_backward_acc); both None is linear_backward.
template <class T>
py::tuple backward(py::handle gyh, py::handle xh, py::handle wh, py::handle yh, Act act,
                   bool need_dx, bool need_dw, bool need_db, py::handle dw_acc = py::none(),
                   py::handle db_acc = py::none()) {
    auto x = input<T>(xh, 2, kBwd, "x", "(N, in_features)");
    auto w = input<T>(wh, 2, kBwd, "w", "(out_features, in_features)");
    LinearArgs s = check_linear<T>(kBwd, x, w);
    auto gy = input<T>(gyh, 2, kBwd, "gy", "(N, out_features)");
    if (gy.shape(0) != s.n || gy.shape(1) != s.out)
        fail_value(std::string(kBwd) + ": gy " + shape_str(gy) + " must have shape (" +
                   std::to_string(s.n) + ", " + std::to_string(s.out) + ") for x " +
                   shape_str(x) + " and w " + shape_str(w));
    py::array_t<T, py::array::c_style> y;
    if (act != Act::None) {
        y = input<T>(yh, 2, kBwd, "y", "(N, out_features)");
        if (y.shape(0) != s.n || y.shape(1) != s.out)
            fail_value(std::string(kBwd) + ": y " + shape_str(y) + " must have the shape of gy " +
                       shape_str(gy));
    }
    py::object dx = py::none(), dw = py::none(), db = py::none();
    if (!(need_dx || need_dw || need_db)) return py::make_tuple(dx, dw, db);

    T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
    const bool add_dw = need_dw && !dw_acc.is_none(), add_db = need_db && !db_acc.is_none();
    if (need_dx) { auto a = empty<T>({s.n, s.in}); dxp = a.mutable_data(); dx = a; }
    if (add_dw) {
        dwp = accumulator<T>(dw_acc, "dw_acc", {s.out, s.in}, {&gy, &x, &w, &y});
        dw = py::reinterpret_borrow<py::object>(dw_acc);
    } else if (need_dw) {
        auto a = empty<T>({s.out, s.in}); dwp = a.mutable_data(); dw = a;
    }
    if (add_db) {
        dbp = accumulator<T>(db_acc, "db_acc", {s.out}, {&gy, &x, &w, &y});
        db = py::reinterpret_borrow<py::object>(db_acc);
    } else if (need_db) {
        auto a = empty<T>({s.out}); dbp = a.mutable_data(); db = a;
    }
    const T *xp = x.data(), *wp = w.data(), *gyp = gy.data();
    const T* yp = act != Act::None ? y.data() : nullptr;
    {
        py::gil_scoped_release nogil;
        ops<T>().linear_backward(s.n, s.in, s.out, gyp, xp, wp, yp, act, dxp, dwp, dbp, add_dw,
                                 add_db);
    }
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void register_linear(py::module_& m) {
    m.def(
        "linear_forward",
        [](py::handle x, py::handle w, py::handle b, py::object activation) -> py::object {
            Act act = parse_act(activation, kFwd);
            return is_f64(ndarray(x, kFwd, "x"), kFwd, "x") ? forward<double>(x, w, b, act)
                                                             : forward<float>(x, w, b, act);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("activation") = py::none(),
        "y = act(x @ w.T + b); x (N, in), w (out, in), b (out,) or None.");
    m.def(
        "linear_backward",
        [](py::handle gy, py::handle x, py::handle w, py::handle y, py::object activation,
           py::object needs) -> py::tuple {
            Act act = parse_act(activation, kBwd);
            bool a, b, c;
            needs3(needs, a, b, c);
            return is_f64(ndarray(x, kBwd, "x"), kBwd, "x")
                       ? backward<double>(gy, x, w, y, act, a, b, c)
                       : backward<float>(gy, x, w, y, act, a, b, c);
        },
        py::arg("gy"), py::arg("x"), py::arg("w"), py::arg("y"),
        py::arg("activation") = py::none(), py::arg("needs") = py::make_tuple(true, true, true),
        "Gradients (dx, dw, db) of the fused linear; None where needs says so.");
    m.def(
        "linear_backward_acc",
        [](py::handle gy, py::handle x, py::handle w, py::handle y, py::object activation,
           py::object needs, py::handle dw_acc, py::handle db_acc) -> py::tuple {
            Act act = parse_act(activation, kBwdAcc);
            bool a, b, c;
            needs3(needs, a, b, c);
            return is_f64(ndarray(x, kBwdAcc, "x"), kBwdAcc, "x")
                       ? backward<double>(gy, x, w, y, act, a, b, c, dw_acc, db_acc)
                       : backward<float>(gy, x, w, y, act, a, b, c, dw_acc, db_acc);
        },
        py::arg("gy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("activation"),
        py::arg("needs"), py::arg("dw_acc"), py::arg("db_acc"),
        "linear_backward, with dw and db added in place into dw_acc / db_acc (each None: a "
        "fresh array) and returned; the sums equal dw_acc + dw bit for bit.");
}

}  // namespace minitl
