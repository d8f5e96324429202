// Fully connected layer, the compute: y = act(x @ w.T + b) and its backward.
// Compiled per instruction-set variant (isa/variant.h); linear.cpp checks
// the arguments and calls these through the variant table.
#pragma once

#include <algorithm>
#include <cstring>

#include "act.h"
#include "gemm.h"

namespace minitl {
inline namespace MINITL_ISA {

// y (n x out) = act(x (n x in) . w^T + b): one product, bias and activation
// applied by the microkernel as it stores each tile (no second pass over y).
template <class T>
void linear_forward_impl(i64 n, i64 in, i64 out, const T* x, const T* w, const T* b, Act act, T* y) {
    gemm<T>(n, out, in, T(1), x, in, 1, w, 1, in, T(0), y, out, true, Epilogue<T>{b, act});
}

// Samples per accumulator of db in linear_backward_impl: fixed, so that db
// does not depend on the thread count.
constexpr i64 kDbChunk = 8;  // sample panels (of Tile<T>::MR samples)

// gz = gy * act'(y) for one panel of MR samples, written straight into the
// two packed layouts the products read, and summed into db: the upstream
// gradient (gy, and y for act') is read once for dx, dw and db together,
// and gz never exists as a plain matrix (nor is it packed twice).
//  * pdx: gz as A of dx = gz . w, M = n samples, K = out (pack_a_full layout:
//    this panel is a transposed MR x out block);
//  * pdw: gz^T as A of dw = gz^T . x, M = out features, K = n (each sample's
//    row lands as out/MR pieces of MR, one per feature panel).
// `g` is an MR x outr scratch block (outr = out rounded up to MR).
template <class T>
void linear_grad_panel(i64 i0, i64 n, i64 out, i64 outr, const T* gy, const T* y, Act act, T* g,
                       T* pdx, T* pdw, T* dbacc) {
    constexpr int MR = Tile<T>::MR;
    const int m = static_cast<int>(std::min<i64>(MR, n - i0));
    for (int ii = 0; ii < MR; ++ii) {
        T* gi = g + ii * outr;
        if (ii < m) {
            const i64 i = i0 + ii;
            // The formulas of act_grad (the path this replaced), so values match it.
            act_grad(gi, gy + i * out, y ? y + i * out : nullptr, out, act);
            std::fill(gi + out, gi + outr, T(0));  // padding features of the last panel
            if (dbacc)
                for (i64 j = 0; j < out; ++j) dbacc[j] += gi[j];
            if (pdw)
                for (i64 j0 = 0; j0 < outr; j0 += MR) std::memcpy(pdw + j0 * n + i * MR, gi + j0, MR * sizeof(T));
        } else {
            std::fill(gi, gi + outr, T(0));  // padding samples of the last panel
        }
    }
    if (pdx) {
        T* px = pdx + i0 * out;
        for (i64 j = 0; j < out; ++j)
            for (int ii = 0; ii < MR; ++ii) px[j * MR + ii] = g[ii * outr + j];
    }
}

// dw (out x in) = gz^T . x, or dw += gz^T . x when `add`: in the product's
// last store while one k block holds all n samples (the same rounding as a
// separate product added into dw, kGemmKBlock), else through scratch.
template <class T>
void linear_weight_grad(i64 out, i64 in, i64 n, const T* pdw, const T* x, T* dw, bool add) {
    if (!add || n <= kGemmKBlock) {
        gemm_packed_a<T>(out, in, n, pdw, x, in, 1, add ? T(1) : T(0), dw, in);
        return;
    }
    T* tmp = scratch<T>(kAcc, out * in);  // db's partial sums are done with
    gemm_packed_a<T>(out, in, n, pdw, x, in, 1, T(0), tmp, in);
    for (i64 i = 0; i < out * in; ++i) dw[i] += tmp[i];
}

template <class T>
void linear_backward_impl(i64 n, i64 in, i64 out, const T* gy, const T* x, const T* w, const T* y,
                          Act act, T* dx, T* dw, T* db, bool add_dw, bool add_db) {
    constexpr int MR = Tile<T>::MR;
    if (n == 0) {  // no samples: zero weight gradients (nothing to add), nothing else
        if (dw && !add_dw) std::fill(dw, dw + out * in, T(0));
        if (db && !add_db) std::fill(db, db + out, T(0));
        return;
    }
    const i64 outr = (out + MR - 1) / MR * MR;
    const i64 panels = (n + MR - 1) / MR, chunks = (panels + kDbChunk - 1) / kDbChunk;
    T* pdx = dx ? scratch<T>(kGrad, packed_a_size<T>(n, out)) : nullptr;
    T* pdw = dw ? scratch<T>(kTmp, packed_a_size<T>(out, n)) : nullptr;
    T* dbacc = db ? scratch<T>(kAcc, chunks * out) : nullptr;  // the calling thread's, shared
    if (dbacc) std::fill(dbacc, dbacc + chunks * out, T(0));
    [[maybe_unused]] const int nt = threads_for(double(n) * out * 4, 1 << 15);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 1)
#endif
    for (i64 ch = 0; ch < chunks; ++ch) {
        T* g = scratch<T>(kTmp2, MR * outr);
        for (i64 p = ch * kDbChunk; p < std::min(panels, (ch + 1) * kDbChunk); ++p)
            linear_grad_panel(p * MR, n, out, outr, gy, y, act, g, pdx, pdw,
                              dbacc ? dbacc + ch * out : nullptr);
    }
    if (db) {  // chunk partial sums, in chunk order, then into db
        for (i64 ch = 1; ch < chunks; ++ch)
            for (i64 j = 0; j < out; ++j) dbacc[j] += dbacc[ch * out + j];
        for (i64 j = 0; j < out; ++j) db[j] = add_db ? db[j] + dbacc[j] : dbacc[j];
    }
    // dx (n x in) = gz (n x out) . w (out x in)
    if (dx) gemm_packed_a<T>(n, in, out, pdx, w, in, 1, T(0), dx, in);
    // dw (out x in) = gz^T (out x n) . x (n x in), (+ dw)
    if (dw) linear_weight_grad(out, in, n, pdw, x, dw, add_dw);
}

}  // inline namespace MINITL_ISA
}  // namespace minitl
