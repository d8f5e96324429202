// Fully connected layer, the compute: y = act(x @ w.T + b) and its backward.
// Compiled per instruction-set variant (isa/variant.h); linear.cpp checks
// the arguments and calls these through the variant table.
#pragma once

#include <algorithm>

#include "act.h"
#include "gemm.h"

namespace minitl {
inline namespace MINITL_ISA {

template <class T>
void linear_forward_impl(i64 n, i64 in, i64 out, const T* x, const T* w, const T* b, Act act, T* y) {
    // y (N x out) = x (N x in) . w^T: w read with swapped strides.
    gemm<T>(n, out, in, T(1), x, in, 1, w, 1, in, T(0), y, out);
    if (b || act != Act::None) {
        [[maybe_unused]] const int nt = threads_for(double(n) * out * (act == Act::Relu ? 1 : 8));
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1)
#endif
        for (i64 i = 0; i < n; ++i) bias_act_row(y + i * out, out, b, act);
    }
}

template <class T>
void linear_backward_impl(i64 n, i64 in, i64 out, const T* gy, const T* x, const T* w, const T* y,
                          Act act, T* dx, T* dw, T* db) {
    const T* gz = gy;
    if (act != Act::None) {
        T* g = scratch<T>(kGrad, n * out);
        act_grad(g, gy, y, n * out, act);
        gz = g;
    }
    // dx (N x in) = gz (N x out) . w (out x in)
    if (dx) gemm<T>(n, in, out, T(1), gz, out, 1, w, in, 1, T(0), dx, in);
    // dw (out x in) = gz^T (out x N) . x (N x in)
    if (dw) gemm<T>(out, in, n, T(1), gz, 1, out, x, in, 1, T(0), dw, in);
    if (db) {
        std::fill(db, db + out, T(0));
        for (i64 i = 0; i < n; ++i) {
            const T* row = gz + i * out;
            for (i64 j = 0; j < out; ++j) db[j] += row[j];
        }
    }
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
