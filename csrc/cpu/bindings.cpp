// minitl._C: the C++ CPU kernels. Each op file registers its own functions;
// this file adds the thread controls, the instruction-set choice and a
// description of the build.
#include <cstdlib>
#include <stdexcept>

#include <pybind11/stl.h>  // std::vector<std::string> -> list

#include "array.h"
#include "isa_select.h"

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
    // The variant is chosen before any kernel can run. A MINITL_CPU_ISA this
    // CPU cannot honour (unknown, not built, or missing instructions) warns
    // and takes the best variant instead of failing: an exception here would
    // surface as an ImportError, which minitl treats as "C++ kernels not
    // built" and answers by running everything on the far slower NumPy
    // reference. The warning, build_info() and the status line of
    // `minitl info` say what runs and why; set_cpu_isa() does raise.
    {
        const std::string warning = init_isa_from_env(std::getenv("MINITL_CPU_ISA"));
        if (!warning.empty() && PyErr_WarnEx(PyExc_RuntimeWarning, warning.c_str(), 1) < 0)
            throw py::error_already_set();  // warnings turned into errors
    }
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
                    ops<T>().gemm(M, N, K, T(1), ap, rsA, csA, bp, rsB, csB, T(0), cp, N, true);
                }
                return c;
            };
            return is_f64(a0, op, "a") ? run(double{}) : run(float{});
        },
        py::arg("a"), py::arg("b"),
        "a @ b with the own GEMM of the active variant (for tests and benchmarks).");
    m.def("set_num_threads", &set_num_threads, py::arg("n"),
          "Threads used by every kernel from now on (1 without OpenMP).");
    m.def("get_num_threads", &num_threads, "Threads the kernels use.");
    m.def(
        "cpu_isa", []() { return std::string(active_kernels().name); },
        "The instruction-set variant the kernels run: 'avx512', 'avx2' or 'generic'.");
    m.def(
        "set_cpu_isa",
        [](const std::string& name) {
            try {
                return set_cpu_isa(name);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("name"),
        "Switch the kernels to 'avx512', 'avx2', 'generic' or 'auto' (the best this CPU runs);\n"
        "returns the active name. ValueError for an unknown name, RuntimeError for one this\n"
        "build or CPU cannot run. MINITL_CPU_ISA sets the same when _C loads.");
    m.def("cpu_isas", &isas_supported,
          "Variants this build contains and this CPU can run, best first.");
    m.def(
        "build_info",
        []() {
            const Kernels& k = active_kernels();
            py::dict d;
            d["openmp"] = openmp_enabled();
            // The kernels that run now (they follow set_cpu_isa):
            d["gemm"] = k.gemm;
            d["simd"] = k.name;
            d["isa"] = k.name;
            d["isa_choice"] = isa_choice();
            d["isa_emulated"] = k.emulated;
            // What could run instead, and why:
            d["isas_compiled"] = isas_compiled();
            d["isas_supported"] = isas_supported();
            d["cpu_features"] = cpu_feature_names();
            std::string runs;
            for (const auto& s : isas_supported()) runs += (runs.empty() ? "" : ", ") + s;
            std::string line = std::string(k.name) + " (" + isa_choice() + "; this CPU runs " + runs + ")";
            if (k.emulated) line += ", EMULATED AVX-512 (test build)";
            d["isa_status"] = line;
            // The rest of the module (bindings, pooling, loss, optimizers):
#if defined(__AVX2__)
            d["baseline"] = "avx2";  // MINITL_NATIVE_ARCH=1 or explicit flags
#elif defined(__x86_64__) || defined(_M_X64)
            d["baseline"] = "x86-64";
#else
            d["baseline"] = "generic";
#endif
#if defined(__VERSION__)
            d["compiler"] = __VERSION__;
#endif
            return d;
        },
        "How the extension was built and which kernels run: openmp; gemm, simd and isa of the\n"
        "active variant (isa_choice: how it was chosen); isas_compiled / isas_supported; the\n"
        "CPU's features; baseline (the flags of everything else); compiler.");
}
