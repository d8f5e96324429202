// minitl._C: the C++ CPU kernels. Each op file registers its own functions;
// this file adds the thread controls and a description of the build.
#include "array.h"
#include "gemm.h"

namespace minitl {
void register_linear(py::module_& m);
void register_conv(py::module_& m);
void register_conv_pool(py::module_& m);
void register_pool(py::module_& m);
void register_loss(py::module_& m);
void register_optim(py::module_& m);
void register_batchnorm(py::module_& m);
}  // namespace minitl

PYBIND11_MODULE(_C, m) {
    using namespace minitl;
    m.doc() = "minitl C++ CPU kernels (signatures of minitl.kernels.reference)";
    register_linear(m);
    register_conv(m);
    register_conv_pool(m);
    register_pool(m);
    register_loss(m);
    register_optim(m);
    register_batchnorm(m);

    m.def(
        "matmul",
        [](py::handle ah, py::handle bh) -> py::object {
            const char* op = "matmul";
            py::array a0 = ndarray(ah, op, "a");
            auto run = [&](auto tag) -> py::object {
                using T = decltype(tag);
                py::array a = a0, b = ndarray(bh, op, "b");
                expect_dtype<T>(a, op, "a");
                expect_dtype<T>(b, op, "b");
                expect_ndim(a, 2, op, "a", "(M, K)");
                expect_ndim(b, 2, op, "b", "(K, N)");
                if (a.shape(1) != b.shape(0))
                    fail_value(std::string(op) + ": a " + shape_str(a) + " and b " + shape_str(b) +
                               " do not chain");
                // Any strides (transposes, slices) go straight to the kernel.
                const i64 M = a.shape(0), K = a.shape(1), N = b.shape(1);
                auto c = empty<T>({M, N});
                const T* ap = static_cast<const T*>(a.data());
                const T* bp = static_cast<const T*>(b.data());
                T* cp = c.mutable_data();
                const i64 rsA = a.strides(0) / i64(sizeof(T)), csA = a.strides(1) / i64(sizeof(T));
                const i64 rsB = b.strides(0) / i64(sizeof(T)), csB = b.strides(1) / i64(sizeof(T));
                if (a.strides(0) % i64(sizeof(T)) || a.strides(1) % i64(sizeof(T)) ||
                    b.strides(0) % i64(sizeof(T)) || b.strides(1) % i64(sizeof(T)))
                    fail_value("matmul: unaligned strides");
                {
                    py::gil_scoped_release nogil;
                    gemm<T>(M, N, K, T(1), ap, rsA, csA, bp, rsB, csB, T(0), cp, N);
                }
                return c;
            };
            return is_f64(a0, op, "a") ? run(double{}) : run(float{});
        },
        py::arg("a"), py::arg("b"), "a @ b with the own GEMM (for tests and benchmarks).");
    m.def("set_num_threads", &set_num_threads, py::arg("n"),
          "Threads used by every kernel from now on (1 without OpenMP).");
    m.def("get_num_threads", &num_threads, "Threads the kernels use.");
    m.def(
        "build_info",
        []() {
            py::dict d;
            d["openmp"] = openmp_enabled();
            d["gemm"] = gemm_kernel_name();
#if defined(__AVX2__)
            d["simd"] = "avx2";
#else
            d["simd"] = "generic";
#endif
#if defined(__VERSION__)
            d["compiler"] = __VERSION__;
#endif
            return d;
        },
        "How the extension was built: openmp, gemm kernel, simd level, compiler.");
}
