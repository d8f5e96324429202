// Binding-side argument checks: every array that reaches a kernel has been
// checked here for type, dtype, rank and shape, so bad arguments raise a
// Python exception naming the shapes instead of crashing the process.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>
#include <vector>

#include "common.h"

namespace minitl {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    if (a.ndim() == 1) s << ",";
    s << ")";
    return s.str();
}

[[noreturn]] inline void fail_value(const std::string& msg) { throw py::value_error(msg); }
[[noreturn]] inline void fail_type(const std::string& msg) { throw py::type_error(msg); }

// The ndarray behind `h`; anything else (lists, None, CuPy arrays) is a TypeError.
inline py::array ndarray(py::handle h, const char* op, const char* name) {
    if (!py::isinstance<py::array>(h)) {
        std::string tn = py::str(py::type::of(h).attr("__name__"));
        fail_type(std::string(op) + ": " + name + " must be a numpy.ndarray, got " + tn);
    }
    return py::reinterpret_borrow<py::array>(h);
}

// The floating dtype of the op: float32 -> false, float64 -> true.
inline bool is_f64(const py::array& a, const char* op, const char* name) {
    if (a.dtype().is(py::dtype::of<float>())) return false;
    if (a.dtype().is(py::dtype::of<double>())) return true;
    fail_type(std::string(op) + ": " + name + " must be float32 or float64, got " +
              std::string(py::str(a.dtype())) + " with shape " + shape_str(a));
}

template <class T>
inline void expect_dtype(const py::array& a, const char* op, const char* name) {
    if (!a.dtype().is(py::dtype::of<T>()))
        fail_type(std::string(op) + ": " + name + " must have dtype " +
                  std::string(py::str(py::dtype::of<T>())) + " like the other inputs, got " +
                  std::string(py::str(a.dtype())) + " with shape " + shape_str(a));
}

inline void expect_ndim(const py::array& a, int nd, const char* op, const char* name,
                        const char* layout) {
    if (a.ndim() != nd)
        fail_value(std::string(op) + ": " + name + " must be " + std::to_string(nd) + "-D " +
                   layout + ", got shape " + shape_str(a));
}

// C-contiguous view of `a` with dtype T (a copy only when `a` is strided).
template <class T>
inline py::array_t<T, py::array::c_style> contig(const py::array& a) {
    return py::array_t<T, py::array::c_style>::ensure(a);
}

// A checked, contiguous, read-only input of dtype T and rank nd.
template <class T>
inline py::array_t<T, py::array::c_style> input(py::handle h, int nd, const char* op,
                                                const char* name, const char* layout) {
    py::array a = ndarray(h, op, name);
    expect_dtype<T>(a, op, name);
    expect_ndim(a, nd, op, name, layout);
    return contig<T>(a);
}

// Integer class labels of length n as int64 (any integer dtype is accepted).
inline py::array_t<std::int64_t, py::array::c_style> labels(py::handle h, i64 n, const char* op,
                                                            const char* name) {
    py::array a = ndarray(h, op, name);
    if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
        fail_type(std::string(op) + ": " + name + " must hold integer class indices, got " +
                  std::string(py::str(a.dtype())) + " with shape " + shape_str(a));
    if (a.ndim() != 1 || a.shape(0) != n)
        fail_value(std::string(op) + ": " + name + " must have shape (" + std::to_string(n) +
                   ",) to match the batch, got " + shape_str(a));
    return py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
}

inline Act parse_act(const py::object& o, const char* op) {
    if (o.is_none()) return Act::None;
    if (!py::isinstance<py::str>(o))
        fail_type(std::string(op) + ": activation must be None or a str");
    std::string s = o.cast<std::string>();
    if (s == "relu") return Act::Relu;
    if (s == "tanh") return Act::Tanh;
    if (s == "sigmoid") return Act::Sigmoid;
    fail_value(std::string(op) + ": unknown activation '" + s +
               "'; expected one of (None, 'relu', 'tanh', 'sigmoid')");
}

// (h, w) pair of non-negative ints from a tuple/list (or a single int).
inline void pair(const py::object& o, const char* op, const char* name, i64& h, i64& w,
                 i64 min_value) {
    if (py::isinstance<py::int_>(o)) {
        h = w = o.cast<i64>();
    } else {
        py::sequence s = o.cast<py::sequence>();
        if (s.size() != 2) fail_value(std::string(op) + ": " + name + " must be an (h, w) pair");
        h = s[0].cast<i64>();
        w = s[1].cast<i64>();
    }
    if (h < min_value || w < min_value)
        fail_value(std::string(op) + ": " + name + " must be >= " + std::to_string(min_value) +
                   ", got (" + std::to_string(h) + ", " + std::to_string(w) + ")");
}

// needs=(dx, dw, db) as three bools.
inline void needs3(const py::object& o, bool& a, bool& b, bool& c) {
    py::sequence s = o.cast<py::sequence>();
    if (s.size() != 3) fail_value("needs must be a (dx, dw, db) triple of bools");
    a = py::bool_(s[0]);
    b = py::bool_(s[1]);
    c = py::bool_(s[2]);
}

template <class T>
inline py::array_t<T> empty(std::vector<py::ssize_t> shape) {
    return py::array_t<T>(std::move(shape));
}

}  // namespace minitl
