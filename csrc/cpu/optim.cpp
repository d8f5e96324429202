// Optimizer steps applied in place over every parameter in one call, with
// PyTorch's update rules (see reference.sgd_step / reference.adam_step).
#include <cmath>

#include "array.h"

namespace minitl {

namespace {

// One parameter's arrays, checked: p (and state) written in place, g read.
template <class T>
struct Slot {
    T* p;
    const T* g;
    T* s1;
    T* s2;
    i64 size;
};

// A writable C-contiguous array of dtype T with `size` elements, updated in place.
template <class T>
T* inplace(py::handle h, const char* op, const std::string& name, i64 size, bool check_size) {
    py::array a = ndarray(h, op, name.c_str());
    expect_dtype<T>(a, op, name.c_str());
    if (!(a.flags() & py::array::c_style) || !a.writeable())
        fail_value(std::string(op) + ": " + name + " " + shape_str(a) +
                   " must be writable and C-contiguous to be updated in place");
    if (check_size && a.size() != size)
        fail_value(std::string(op) + ": " + name + " " + shape_str(a) + " has " +
                   std::to_string(a.size()) + " elements, its parameter " + std::to_string(size));
    return static_cast<T*>(a.mutable_data());
}

// Checks the parallel lists and collects raw pointers (grads made contiguous, kept alive).
template <class T>
std::vector<Slot<T>> gather(const char* op, const py::sequence& params, const py::sequence& grads,
                            const py::sequence* s1, const char* s1n, const py::sequence* s2,
                            const char* s2n, std::vector<py::object>& keep) {
    const std::size_t n = params.size();
    auto same_len = [&](const py::sequence* l, const char* name) {
        if (l && l->size() != n)
            fail_value(std::string(op) + ": " + name + " has " + std::to_string(l->size()) +
                       " arrays for " + std::to_string(n) + " params");
    };
    same_len(&grads, "grads");
    same_len(s1, s1n);
    same_len(s2, s2n);
    std::vector<Slot<T>> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::string at = "[" + std::to_string(i) + "]";
        Slot<T>& s = out[i];
        s.p = inplace<T>(params[i], op, "params" + at, 0, false);
        s.size = ndarray(params[i], op, "params").size();
        py::array g = ndarray(grads[i], op, ("grads" + at).c_str());
        expect_dtype<T>(g, op, ("grads" + at).c_str());
        if (g.size() != s.size)
            fail_value(std::string(op) + ": grads" + at + " " + shape_str(g) +
                       " does not match params" + at + " " +
                       shape_str(ndarray(params[i], op, "params")));
        auto gc = contig<T>(g);
        s.g = gc.data();
        keep.push_back(gc);
        s.s1 = s1 ? inplace<T>((*s1)[i], op, s1n + at, s.size, true) : nullptr;
        s.s2 = s2 ? inplace<T>((*s2)[i], op, s2n + at, s.size, true) : nullptr;
    }
    return out;
}

template <class T>
void sgd(const char* op, const py::sequence& params, const py::sequence& grads, const py::sequence& bufs,
         double lr_, double momentum_, double dampening_, bool nesterov, double wd_, bool first) {
    std::vector<py::object> keep;
    auto slots = gather<T>(op, params, grads, momentum_ != 0 ? &bufs : nullptr, "bufs", nullptr,
                           nullptr, keep);
    const T lr = T(lr_), mom = T(momentum_), damp = T(1) - T(dampening_), wd = T(wd_);
    py::gil_scoped_release nogil;
    for (const Slot<T>& s : slots) {
        T* __restrict p = s.p;
        const T* __restrict g = s.g;
        T* __restrict buf = s.s1;
        [[maybe_unused]] const int nt = threads_for(double(s.size), 1 << 16);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 i = 0; i < s.size; ++i) {
            T d = g[i];
            if (wd != T(0)) d += wd * p[i];
            if (mom != T(0)) {
                const T b = first ? d : mom * buf[i] + damp * d;
                buf[i] = b;
                d = nesterov ? d + mom * b : b;
            }
            p[i] -= lr * d;
        }
    }
}

template <class T>
void adam(const char* op, const py::sequence& params, const py::sequence& grads, const py::sequence& m1,
          const py::sequence& m2, i64 step, double lr_, double beta1_, double beta2_, double eps_,
          double wd_, bool decoupled) {
    if (step < 1) fail_value(std::string(op) + ": step must be >= 1 (1-based), got " + std::to_string(step));
    std::vector<py::object> keep;
    auto slots = gather<T>(op, params, grads, &m1, "exp_avgs", &m2, "exp_avg_sqs", keep);
    const T b1 = T(beta1_), b2 = T(beta2_), eps = T(eps_), wd = T(wd_), lr = T(lr_);
    const T bc1 = T(1 - std::pow(beta1_, double(step)));
    const T bc2 = T(1 - std::pow(beta2_, double(step)));
    const T step_size = lr / bc1, decay = T(1) - lr * wd;
    py::gil_scoped_release nogil;
    for (const Slot<T>& s : slots) {
        T* __restrict p = s.p;
        const T* __restrict g = s.g;
        T* __restrict m = s.s1;
        T* __restrict v = s.s2;
        [[maybe_unused]] const int nt = threads_for(double(s.size) * 4, 1 << 16);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 i = 0; i < s.size; ++i) {
            T d = g[i];
            if (wd != T(0)) {
                if (decoupled) p[i] *= decay;
                else d += wd * p[i];
            }
            m[i] = b1 * m[i] + (T(1) - b1) * d;
            v[i] = b2 * v[i] + (T(1) - b2) * d * d;
            const T denom = std::sqrt(v[i] / bc2) + eps;
            p[i] -= step_size * m[i] / denom;
        }
    }
}

// float64 when the first parameter is (an empty list does nothing).
bool f64_params(const char* op, const py::sequence& params) {
    return params.size() > 0 && is_f64(ndarray(params[0], op, "params[0]"), op, "params[0]");
}

}  // namespace

void register_optim(py::module_& m) {
    m.def(
        "sgd_step",
        [](py::sequence params, py::sequence grads, py::object bufs, double lr, double momentum,
           double dampening, bool nesterov, double weight_decay, bool first) {
            const char* op = "sgd_step";
            // Momentum buffers are not read without momentum (may be None).
            py::sequence b = momentum != 0 ? bufs.cast<py::sequence>() : py::sequence(py::list());
            if (params.size() == 0) return;
            if (f64_params(op, params))
                sgd<double>(op, params, grads, b, lr, momentum, dampening, nesterov, weight_decay, first);
            else
                sgd<float>(op, params, grads, b, lr, momentum, dampening, nesterov, weight_decay, first);
        },
        py::arg("params"), py::arg("grads"), py::arg("bufs"), py::arg("lr"),
        py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("nesterov") = false,
        py::arg("weight_decay") = 0.0, py::arg("first") = false,
        "In-place SGD (momentum, dampening, Nesterov, weight decay) over lists of arrays.");
    m.def(
        "adam_step",
        [](py::sequence params, py::sequence grads, py::sequence exp_avgs, py::sequence exp_avg_sqs, i64 step,
           double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
            const char* op = "adam_step";
            if (params.size() == 0) return;
            if (f64_params(op, params))
                adam<double>(op, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                             weight_decay, decoupled);
            else
                adam<float>(op, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                            weight_decay, decoupled);
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("step"), py::arg("lr") = 1e-3, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
        py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("decoupled") = false,
        "In-place Adam (decoupled=False) or AdamW (decoupled=True) over lists of arrays.");
}

}  // namespace minitl
