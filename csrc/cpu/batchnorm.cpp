// BatchNorm forward (batch or running statistics, running-stat update in
// place) and backward over x (N, C, *spatial), the contract of
// minitl/kernels/norm_reference.py. Threads split the channels; each channel
// is summed by one thread in a fixed order (n, then position), in double, so
// the result is bit-identical for any thread count.
#include <cmath>
#include <vector>

#include "array.h"

namespace minitl {

namespace {

constexpr const char* kFwd = "batch_norm_forward";
constexpr const char* kBwd = "batch_norm_backward";

// x viewed as (N, C, S): S = product of the spatial sizes (1 for (N, C)).
struct Layout {
    i64 n, c, s;
};

Layout layout_of(const py::array& x, const char* op, const char* name) {
    if (x.ndim() < 2)
        fail_value(std::string(op) + ": " + name + " must be (N, C) or (N, C, *spatial), got shape " +
                   shape_str(x));
    Layout l{x.shape(0), x.shape(1), 1};
    for (py::ssize_t i = 2; i < x.ndim(); ++i) l.s *= x.shape(i);
    return l;
}

std::vector<py::ssize_t> shape_of(const py::array& x) {
    return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim());
}

// A per-channel (C,) float32/float64 vector as doubles; empty when `h` is None.
std::vector<double> channels(py::handle h, i64 c, const char* op, const char* name) {
    if (h.is_none()) return {};
    py::array a = ndarray(h, op, name);
    is_f64(a, op, name);  // rejects non-float dtypes with a clear message
    if (a.ndim() != 1 || a.shape(0) != c)
        fail_value(std::string(op) + ": " + name + " must have shape (" + std::to_string(c) +
                   ",) for the channels of x, got " + shape_str(a));
    auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
    return std::vector<double>(d.data(), d.data() + c);
}

// A running buffer updated in place: r <- (1 - f) r + f * stat.
template <class R>
void update_buffer(py::array& a, const std::vector<double>& stat, double f) {
    auto r = a.mutable_unchecked<R, 1>();
    for (py::ssize_t i = 0; i < r.shape(0); ++i)
        r(i) = R((1.0 - f) * double(r(i)) + f * stat[std::size_t(i)]);
}

py::array running_buffer(py::handle h, i64 c, const char* name) {
    py::array a = ndarray(h, kFwd, name);
    is_f64(a, kFwd, name);
    if (a.ndim() != 1 || a.shape(0) != c)
        fail_value(std::string(kFwd) + ": " + name + " must have shape (" + std::to_string(c) +
                   ",) for the channels of x, got " + shape_str(a));
    if (!a.writeable())
        fail_value(std::string(kFwd) + ": " + name + " is read-only; it is updated in place");
    return a;
}

void update_running(py::array& a, const std::vector<double>& stat, double f) {
    if (a.dtype().is(py::dtype::of<double>()))
        update_buffer<double>(a, stat, f);
    else
        update_buffer<float>(a, stat, f);
}

template <class T>
py::array_t<T> as_array(const std::vector<double>& v) {
    auto out = empty<T>({py::ssize_t(v.size())});
    T* p = out.mutable_data();
    for (std::size_t i = 0; i < v.size(); ++i) p[i] = T(v[i]);
    return out;
}

// Sums over one contiguous run, in kLanes independent float64 partial sums
// (so the adds pipeline and vectorise) folded in a fixed order: the result
// depends only on the run, never on the threads.
constexpr int kLanes = 8;

template <class T>
double run_sum(const T* p, i64 n) {
    double lane[kLanes] = {0};
    i64 i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int k = 0; k < kLanes; ++k) lane[k] += double(p[i + k]);
    double s = 0.0;
    for (int k = 0; k < kLanes; ++k) s += lane[k];
    for (; i < n; ++i) s += double(p[i]);
    return s;
}

// sum (p - mu)^2 over one run.
template <class T>
double run_sqdev(const T* p, i64 n, double mu) {
    double lane[kLanes] = {0};
    i64 i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int k = 0; k < kLanes; ++k) {
            const double d = double(p[i + k]) - mu;
            lane[k] += d * d;
        }
    double s = 0.0;
    for (int k = 0; k < kLanes; ++k) s += lane[k];
    for (; i < n; ++i) {
        const double d = double(p[i]) - mu;
        s += d * d;
    }
    return s;
}

// (sum g, sum g * (x - mu) * is) over one run.
template <class T>
void run_grad_sums(const T* g, const T* x, i64 n, double mu, double is, double& sg, double& sgx) {
    double lg[kLanes] = {0}, lgx[kLanes] = {0};
    i64 i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int k = 0; k < kLanes; ++k) {
            const double gi = double(g[i + k]);
            lg[k] += gi;
            lgx[k] += gi * ((double(x[i + k]) - mu) * is);
        }
    double a = 0.0, b = 0.0;
    for (int k = 0; k < kLanes; ++k) a += lg[k], b += lgx[k];
    for (; i < n; ++i) {
        const double gi = double(g[i]);
        a += gi;
        b += gi * ((double(x[i]) - mu) * is);
    }
    sg += a;
    sgx += b;
}

// Runs body(c0, c1) over channel ranges on up to `nt` threads.
template <class F>
void over_channels(i64 c, int nt, F body) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        i64 lo, hi;
        split_range(c, team_size(), thread_id(), lo, hi);
        if (lo < hi) body(lo, hi);
    }
}

template <class T>
py::tuple forward(py::handle xh, py::handle wh, py::handle bh, py::handle rmh, py::handle rvh,
                  bool training, double factor, double eps) {
    auto x = contig<T>(ndarray(xh, kFwd, "x"));
    const Layout l = layout_of(x, kFwd, "x");
    const i64 m = l.n * l.s;
    const std::vector<double> w = channels(wh, l.c, kFwd, "weight");
    const std::vector<double> b = channels(bh, l.c, kFwd, "bias");
    if (rmh.is_none() != rvh.is_none())
        fail_value(std::string(kFwd) + ": give both running_mean and running_var, or neither");
    const bool running = !rmh.is_none();
    if (!training && !running)
        fail_value(std::string(kFwd) + ": evaluation needs running_mean and running_var");
    py::array rm, rv;
    if (running) {
        rm = running_buffer(rmh, l.c, "running_mean");
        rv = running_buffer(rvh, l.c, "running_var");
    }
    if (training && m < 1)
        fail_value(std::string(kFwd) + ": x " + shape_str(x) + " has no values per channel");
    if (training && running && m < 2)
        fail_value(std::string(kFwd) + ": x " + shape_str(x) +
                   " has 1 value per channel; the unbiased variance needs more than 1");

    std::vector<double> mean(std::size_t(l.c)), var(std::size_t(l.c));
    if (!training) {
        mean = channels(rm, l.c, kFwd, "running_mean");
        var = channels(rv, l.c, kFwd, "running_var");
    }
    auto y = py::array_t<T>(shape_of(x));
    const T* xp = x.data();
    T* yp = y.mutable_data();
    std::vector<double> invstd(std::size_t(l.c));
    {
        py::gil_scoped_release nogil;
        const int nt = threads_for(double(l.n) * l.c * l.s * 3);
        over_channels(l.c, nt, [&](i64 c0, i64 c1) {
            if (training) {
                // mean, then the biased variance about it (two passes, as the reference)
                for (i64 c = c0; c < c1; ++c) mean[c] = 0.0;
                for (i64 n = 0; n < l.n; ++n)
                    for (i64 c = c0; c < c1; ++c) mean[c] += run_sum(xp + (n * l.c + c) * l.s, l.s);
                for (i64 c = c0; c < c1; ++c) mean[c] /= double(m), var[c] = 0.0;
                for (i64 n = 0; n < l.n; ++n)
                    for (i64 c = c0; c < c1; ++c)
                        var[c] += run_sqdev(xp + (n * l.c + c) * l.s, l.s, mean[c]);
                for (i64 c = c0; c < c1; ++c) var[c] /= double(m);
            }
            // y = x * scale + shift, folded per channel in the dtype of x
            std::vector<T> scale(std::size_t(c1 - c0)), shift(std::size_t(c1 - c0));
            for (i64 c = c0; c < c1; ++c) {
                invstd[c] = 1.0 / std::sqrt(var[c] + eps);
                const double sc = w.empty() ? invstd[c] : invstd[c] * w[c];
                scale[c - c0] = T(sc);
                shift[c - c0] = T(b.empty() ? -mean[c] * sc : b[c] - mean[c] * sc);
            }
            for (i64 n = 0; n < l.n; ++n)
                for (i64 c = c0; c < c1; ++c) {
                    const i64 off = (n * l.c + c) * l.s;
                    const T sc = scale[c - c0], sh = shift[c - c0];
                    for (i64 i = 0; i < l.s; ++i) yp[off + i] = xp[off + i] * sc + sh;
                }
        });
    }
    if (training && running) {
        // PyTorch keeps the unbiased batch variance in running_var.
        std::vector<double> unbiased(var);
        for (double& v : unbiased) v *= double(m) / double(m - 1);
        update_running(rm, mean, factor);
        update_running(rv, unbiased, factor);
    }
    return py::make_tuple(y, as_array<T>(mean), as_array<T>(invstd));
}

template <class T>
py::tuple backward(py::handle gh, py::handle xh, py::handle wh, py::handle mh, py::handle ih,
                   bool training, const py::object& needs) {
    bool need_dx, need_dw, need_db;
    needs3(needs, need_dx, need_dw, need_db);
    auto x = contig<T>(ndarray(xh, kBwd, "x"));
    const Layout l = layout_of(x, kBwd, "x");
    py::array g0 = ndarray(gh, kBwd, "gy");
    expect_dtype<T>(g0, kBwd, "gy");
    if (shape_of(g0) != shape_of(x))
        fail_value(std::string(kBwd) + ": gy " + shape_str(g0) + " must have the shape of x " +
                   shape_str(x));
    auto g = contig<T>(g0);
    const std::vector<double> w = channels(wh, l.c, kBwd, "weight");
    if (mh.is_none() || ih.is_none())
        fail_value(std::string(kBwd) + ": mean and invstd are required");
    const std::vector<double> mean = channels(mh, l.c, kBwd, "mean");
    const std::vector<double> invstd = channels(ih, l.c, kBwd, "invstd");
    const i64 m = l.n * l.s;
    // Sums are needed for dweight/dbias, and for dx in train mode.
    const bool sums = need_dw || need_db || (need_dx && training);
    std::vector<double> sum_g(std::size_t(l.c), 0.0), sum_gx(std::size_t(l.c), 0.0);
    py::array_t<T> dx;
    if (need_dx) dx = py::array_t<T>(shape_of(x));
    const T *xp = x.data(), *gp = g.data();
    T* dxp = need_dx ? dx.mutable_data() : nullptr;
    {
        py::gil_scoped_release nogil;
        const int nt = threads_for(double(l.n) * l.c * l.s * 3);
        over_channels(l.c, nt, [&](i64 c0, i64 c1) {
            if (sums)
                for (i64 n = 0; n < l.n; ++n)
                    for (i64 c = c0; c < c1; ++c) {
                        const i64 off = (n * l.c + c) * l.s;
                        run_grad_sums(gp + off, xp + off, l.s, mean[c], invstd[c], sum_g[c], sum_gx[c]);
                    }
            if (!need_dx) return;
            for (i64 n = 0; n < l.n; ++n)
                for (i64 c = c0; c < c1; ++c) {
                    const i64 off = (n * l.c + c) * l.s;
                    const double sc = w.empty() ? invstd[c] : invstd[c] * w[c];
                    if (training) {
                        // (scale / M) * (M g - sum g - xhat * sum(g xhat))
                        const double mu = mean[c], is = invstd[c];
                        const double mg = sum_g[c] / double(m), mgx = sum_gx[c] / double(m);
                        for (i64 i = 0; i < l.s; ++i) {
                            const double xhat = (double(xp[off + i]) - mu) * is;
                            dxp[off + i] = T((double(gp[off + i]) - mg - xhat * mgx) * sc);
                        }
                    } else {
                        const T s = T(sc);  // eval: y = x * scale + shift
                        for (i64 i = 0; i < l.s; ++i) dxp[off + i] = gp[off + i] * s;
                    }
                }
        });
    }
    py::object odx = need_dx ? py::object(dx) : py::none();
    py::object odw = need_dw ? py::object(as_array<T>(sum_gx)) : py::none();
    py::object odb = need_db ? py::object(as_array<T>(sum_g)) : py::none();
    return py::make_tuple(odx, odw, odb);
}

}  // namespace

void register_batchnorm(py::module_& m) {
    m.def(
        "batch_norm_forward",
        [](py::handle x, py::handle weight, py::handle bias, py::handle running_mean,
           py::handle running_var, bool training, double factor, double eps) {
            return is_f64(ndarray(x, kFwd, "x"), kFwd, "x")
                       ? forward<double>(x, weight, bias, running_mean, running_var, training, factor, eps)
                       : forward<float>(x, weight, bias, running_mean, running_var, training, factor, eps);
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("training"), py::arg("factor"), py::arg("eps"),
        "(y, mean, invstd) of BatchNorm over x (N, C, *); train mode updates the running "
        "buffers in place with the unbiased batch variance.");
    m.def(
        "batch_norm_backward",
        [](py::handle gy, py::handle x, py::handle weight, py::handle mean, py::handle invstd,
           bool training, py::object needs) {
            return is_f64(ndarray(x, kBwd, "x"), kBwd, "x")
                       ? backward<double>(gy, x, weight, mean, invstd, training, needs)
                       : backward<float>(gy, x, weight, mean, invstd, training, needs);
        },
        py::arg("gy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("invstd"),
        py::arg("training"), py::arg("needs") = py::make_tuple(true, true, true),
        "(dx, dweight, dbias) of BatchNorm; None where not needed.");
}

}  // namespace minitl
