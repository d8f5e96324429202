// Softmax cross-entropy fused: per-sample losses and probabilities in one
// pass over the logits; the backward needs only the probabilities.
#include <cmath>

#include "act.h"
#include "array.h"

namespace minitl {

namespace {

constexpr const char* kFwd = "cross_entropy_forward";
constexpr const char* kBwd = "cross_entropy_backward";

inline float exp_t(float v) { return exp_fast(v); }
inline double exp_t(double v) { return std::exp(v); }

void check_targets(const char* op, const std::int64_t* t, i64 n, i64 c) {
    for (i64 i = 0; i < n; ++i)
        if (t[i] < 0 || t[i] >= c)
            throw py::index_error(std::string(op) + ": target[" + std::to_string(i) + "] = " +
                                  std::to_string(t[i]) + " is not a class index in [0, " +
                                  std::to_string(c) + ")");
}

template <class T>
py::tuple forward(py::handle lh, py::handle th, double smoothing) {
    auto z = input<T>(lh, 2, kFwd, "logits", "(N, C)");
    const i64 n = z.shape(0), c = z.shape(1);
    if (c < 1) fail_value(std::string(kFwd) + ": logits " + shape_str(z) + " have no classes");
    auto t = labels(th, n, kFwd, "target");
    check_targets(kFwd, t.data(), n, c);
    auto losses = empty<T>({n});
    auto probs = empty<T>({n, c});
    const T* zp = z.data();
    const std::int64_t* tp = t.data();
    T *lp = losses.mutable_data(), *pp = probs.mutable_data();
    const T s = T(smoothing), keep = T(1) - s, per_class = s / T(c);
    {
        py::gil_scoped_release nogil;
        [[maybe_unused]] const int nt = threads_for(double(n) * c * 8);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
        for (i64 i = 0; i < n; ++i) {
            const T* zi = zp + i * c;
            T* pi = pp + i * c;
            T m = zi[0];
            for (i64 j = 1; j < c; ++j) m = zi[j] > m ? zi[j] : m;
            T sum = T(0);
            for (i64 j = 0; j < c; ++j) {
                pi[j] = exp_t(zi[j] - m);
                sum += pi[j];
            }
            const T lse = std::log(sum);  // log-sum-exp of the shifted logits
            T sum_logp = T(0);
            for (i64 j = 0; j < c; ++j) {
                const T logp = zi[j] - m - lse;
                sum_logp += logp;
                pi[j] = exp_t(logp);
            }
            // Without smoothing the sum of log-probabilities is not used: 0 * -Inf
            // (a -Inf logit) would be NaN where the reference gives a finite loss.
            lp[i] = -keep * (zi[tp[i]] - m - lse) - (s != T(0) ? per_class * sum_logp : T(0));
        }
    }
    return py::make_tuple(losses, probs);
}

template <class T>
py::object backward(py::handle gh, py::handle ph, py::handle th, double smoothing) {
    auto p = input<T>(ph, 2, kBwd, "probs", "(N, C)");
    const i64 n = p.shape(0), c = p.shape(1);
    auto g = input<T>(gh, 1, kBwd, "glosses", "(N,)");
    if (g.shape(0) != n)
        fail_value(std::string(kBwd) + ": glosses " + shape_str(g) + " must have shape (" +
                   std::to_string(n) + ",) to match probs " + shape_str(p));
    auto t = labels(th, n, kBwd, "target");
    check_targets(kBwd, t.data(), n, c);
    auto out = empty<T>({n, c});
    const T *pp = p.data(), *gp = g.data();
    const std::int64_t* tp = t.data();
    T* op = out.mutable_data();
    const T keep = T(1) - T(smoothing), per_class = T(smoothing) / T(c);
    {
        py::gil_scoped_release nogil;
        for (i64 i = 0; i < n; ++i) {
            const T* pi = pp + i * c;
            T* oi = op + i * c;
            const T gi = gp[i];
            for (i64 j = 0; j < c; ++j) oi[j] = (pi[j] - per_class) * gi;
            oi[tp[i]] = (pi[tp[i]] - per_class - keep) * gi;
        }
    }
    return out;
}

}  // namespace

void register_loss(py::module_& m) {
    m.def(
        "cross_entropy_forward",
        [](py::handle logits, py::handle target, double label_smoothing) {
            return is_f64(ndarray(logits, kFwd, "logits"), kFwd, "logits")
                       ? forward<double>(logits, target, label_smoothing)
                       : forward<float>(logits, target, label_smoothing);
        },
        py::arg("logits"), py::arg("target"), py::arg("label_smoothing") = 0.0,
        "Per-sample losses (N,) and softmax probabilities (N, C) of 2-D logits.");
    m.def(
        "cross_entropy_backward",
        [](py::handle glosses, py::handle probs, py::handle target, double label_smoothing) {
            return is_f64(ndarray(probs, kBwd, "probs"), kBwd, "probs")
                       ? backward<double>(glosses, probs, target, label_smoothing)
                       : backward<float>(glosses, probs, target, label_smoothing);
        },
        py::arg("glosses"), py::arg("probs"), py::arg("target"), py::arg("label_smoothing") = 0.0,
        "d(losses)/d(logits) scaled by the per-sample upstream gradient glosses.");
}

}  // namespace minitl
