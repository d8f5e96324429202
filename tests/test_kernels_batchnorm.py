"""The C++ BatchNorm kernels (minitl._C) against the reference (kernels/norm_reference.py).

Forward (train and eval, affine or not, momentum or cumulative factor) and
backward on hypothesis-drawn (N, C[, H, W]); the running buffers must move
like the reference's, NaN/Inf must propagate like the reference, results
must be bit-identical for 1 and 2 threads, and bad arguments must raise a
Python exception naming the kernel. float32 is compared to 1e-4 of the
largest magnitude: the C++ kernel sums in float64 where the reference sums
in float32, so near-constant channels differ by the reference's rounding.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
from minitl import kernels, nn
from minitl.kernels import cpu as N
from minitl.kernels import norm_reference as R

from hypothesis_kernels import DTYPES, LAYOUTS, NEEDS, arrange, batchnorm_shapes

REQUIRE = os.environ.get("MINITL_REQUIRE_NATIVE") == "1"
if not N.AVAILABLE and not REQUIRE:
    pytest.skip(f"C++ kernels not built: {N.STATUS}", allow_module_level=True)

TOL = {np.float32: 1e-4, np.float64: 1e-10}
FACTORS = st.sampled_from([0.1, 1.0, 0.5, 1.0 / 3])  # momentum 0.1, and 1/k of momentum=None


def close(got, want, dtype, what=""):
    """Same shape and dtype, NaN where the reference has NaN, else within TOL of the largest magnitude."""
    if want is None:
        assert got is None, f"{what}: expected None"
        return
    assert got is not None, f"{what}: got None"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions differ")
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=f"{what}: Inf differ")
    if finite.any():
        w, g = want[finite].astype(np.float64), got[finite].astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(w))))
        err = float(np.max(np.abs(g - w)))
        assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} > {TOL[dtype]:.0e} * {scale:.3g}"


def draw_case(data, dtype, shape):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    affine = data.draw(st.booleans(), label="affine")
    w = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    buf = data.draw(DTYPES, label="buffer dtype")
    rm = rng.standard_normal(c).astype(buf)
    rv = rng.uniform(0.5, 2.0, c).astype(buf)
    return rng, x, w, b, rm, rv


def tol_dtype(dtype, rm, training):
    """Eval normalises with the running buffers, so float32 buffers bound the agreement (the
    reference computes invstd in the buffers' precision, the kernel in float64)."""
    return np.float32 if (not training and rm is not None and rm.dtype == np.float32) else dtype


def buffer_tol(dtype, buf):
    """Running buffers hold statistics of x, so the lower of the two precisions bounds them."""
    return np.float32 if np.float32 in (dtype, buf.dtype.type) else dtype


def both_forwards(x, w, b, rm, rv, training, factor, eps=1e-5):
    """(native result, native buffers), (reference result, reference buffers), each on own buffer copies."""
    out = []
    for fn in (N.batch_norm_forward, R.batch_norm_forward):
        m, v = (None, None) if rm is None else (rm.copy(), rv.copy())
        out.append((fn(x, w, b, m, v, training, factor, eps), (m, v)))
    return out


# ------------------------------------------------------------------- dispatch
def test_dispatch_serves_the_native_batchnorm_and_reference_can_be_forced():
    try:
        kernels.use("native")
        assert kernels.get("batch_norm_forward") is N.batch_norm_forward
        assert kernels.get("batch_norm_backward") is N.batch_norm_backward
        kernels.use("reference")
        assert kernels.get("batch_norm_forward") is R.batch_norm_forward
        assert kernels.active()["batch_norm_backward"] == "reference"
    finally:
        kernels.use("native")


# -------------------------------------------------------------------- forward
@given(data=st.data(), dtype=DTYPES, shape=batchnorm_shapes(), training=st.booleans(), factor=FACTORS,
       layout=LAYOUTS, track=st.booleans())
def test_forward_matches_reference(data, dtype, shape, training, factor, layout, track):
    _, x, w, b, rm, rv = draw_case(data, dtype, shape)
    if not track and training:
        rm = rv = None  # track_running_stats=False: batch statistics, nothing to update
    x = arrange(x, layout)
    (got, (gm, gv)), (want, (wm, wv)) = both_forwards(x, w, b, rm, rv, training, factor)
    for name, g, r in zip(("y", "mean", "invstd"), got, want):
        close(g, r, tol_dtype(dtype, rm, training), name)
    if rm is not None:
        close(gm, wm, buffer_tol(dtype, gm), "running_mean")
        close(gv, wv, buffer_tol(dtype, gv), "running_var")
        if not training:
            np.testing.assert_array_equal(gm, rm)  # eval never moves the statistics
            np.testing.assert_array_equal(gv, rv)


def test_forward_updates_running_buffers_in_place_by_hand():
    # x per channel: [1, 3] and [0, 4] -> mean 2 / 2, unbiased var 2 / 8.
    x = np.array([[1.0, 0.0], [3.0, 4.0]])
    rm, rv = np.zeros(2), np.ones(2)
    ids = id(rm), id(rv)
    y, mean, invstd = N.batch_norm_forward(x, None, None, rm, rv, True, 0.1, 0.0)
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(invstd, [1.0, 0.5])  # biased var 1 and 4
    np.testing.assert_allclose(y, [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(rm, [0.2, 0.2])
    np.testing.assert_allclose(rv, [0.9 + 0.2, 0.9 + 0.8])
    assert (id(rm), id(rv)) == ids
    # cumulative average, first batch: factor 1 replaces the buffers by the batch statistics
    N.batch_norm_forward(x, None, None, rm, rv, True, 1.0, 0.0)
    np.testing.assert_allclose(rm, [2.0, 2.0])
    np.testing.assert_allclose(rv, [2.0, 8.0])


# ------------------------------------------------------------------- backward
@given(data=st.data(), dtype=DTYPES, shape=batchnorm_shapes(), training=st.booleans(), needs=NEEDS,
       layout=LAYOUTS)
def test_backward_matches_reference(data, dtype, shape, training, needs, layout):
    rng, x, w, b, rm, rv = draw_case(data, dtype, shape)
    _, mean, invstd = R.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training, 0.1, 1e-5)
    gy = arrange(rng.standard_normal(shape).astype(dtype), layout)
    got = N.batch_norm_backward(gy, x, w, mean, invstd, training, needs)
    want = R.batch_norm_backward(gy, x, w, mean, invstd, training, needs)
    for name, g, r in zip(("dx", "dweight", "dbias"), got, want):
        close(g, r, dtype, name)


# ------------------------------------------------------------------ NaN / Inf
@given(data=st.data(), dtype=DTYPES, shape=batchnorm_shapes(), training=st.booleans(),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_nan_and_inf_propagate_like_the_reference(data, dtype, shape, training, bad):
    rng, x, w, b, rm, rv = draw_case(data, dtype, shape)
    where = data.draw(st.tuples(*[st.integers(0, s - 1) for s in shape]), label="position")
    x[where] = bad
    with np.errstate(invalid="ignore"):  # the reference's inf - inf, silenced; NaN is the point
        (got, (gm, gv)), (want, (wm, wv)) = both_forwards(x, w, b, rm, rv, training, 0.1)
    for name, g, r in zip(("y", "mean", "invstd"), got, want):
        close(g, r, tol_dtype(dtype, rm, training), name)
    close(gm, wm, buffer_tol(dtype, gm), "running_mean")
    close(gv, wv, buffer_tol(dtype, gv), "running_var")
    if training:
        assert np.isnan(got[0][(slice(None), where[1])]).all()  # the whole channel is poisoned
    gy = rng.standard_normal(shape).astype(dtype)
    gy[tuple(rng.integers(0, s) for s in shape)] = np.nan
    _, mean, invstd = want
    with np.errstate(invalid="ignore"):
        want_grads = R.batch_norm_backward(gy, x, w, mean, invstd, training)
    for name, g, r in zip(("dx", "dweight", "dbias"), N.batch_norm_backward(gy, x, w, mean, invstd, training),
                          want_grads):
        close(g, r, dtype, name)


# -------------------------------------------------------------------- threads
def _run_all(x, w, b, rm, rv, gy, training):
    m, v = rm.copy(), rv.copy()
    y, mean, invstd = N.batch_norm_forward(x, w, b, m, v, training, 0.1, 1e-5)
    grads = N.batch_norm_backward(gy, x, w, mean, invstd, training)
    return (y, mean, invstd, m, v) + tuple(grads)


@pytest.mark.parametrize("shape", [(8, 16, 32, 32), (4096, 24), (64, 3, 17, 13), (3, 1, 200, 200)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_for_one_and_two_threads(shape, dtype):
    rng = np.random.default_rng(7)
    c = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    old = minitl.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            minitl.set_num_threads(n)
            runs.append([_run_all(x, w, b, rm, rv, gy, t) for t in (True, False)])
    finally:
        minitl.set_num_threads(old)
    for one, two in zip(runs[0], runs[1]):
        for a, bb in zip(one, two):
            assert a.tobytes() == bb.tobytes()


# ---------------------------------------------------------------- end to end
def test_batchnorm2d_module_trains_the_same_on_native_and_reference():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 3, 5, 5)).astype(np.float32) for _ in range(3)]
    results = []
    try:
        for choice in ("native", "reference"):
            kernels.use(choice)
            bn = nn.BatchNorm2d(3, momentum=None)
            bn.weight.data[...] = [0.5, 1.0, 2.0]
            for x in xs:
                t = minitl.tensor(x, requires_grad=True)
                (bn(t) * minitl.tensor(x)).sum().backward()
            bn.eval()
            y = bn(minitl.tensor(xs[0])).data
            results.append((y, t.grad.data, bn.weight.grad.data, bn.running_mean.data.copy(),
                            bn.running_var.data.copy()))
    finally:
        kernels.use("native")
    for g, r in zip(*results):
        close(g, r, np.float32)


# --------------------------------------------------------------------- errors
def test_bad_arguments_raise_errors_naming_the_kernel():
    x = np.zeros((4, 3), np.float32)
    c3 = np.zeros(3, np.float32)
    fwd, bwd = N.batch_norm_forward, N.batch_norm_backward
    cases = [
        (ValueError, r"batch_norm_forward: x must be \(N, C\)", lambda: fwd(c3, None, None, None, None, True, 0.1, 1e-5)),
        (TypeError, r"batch_norm_forward: x must be float32 or float64.*int32",
         lambda: fwd(x.astype(np.int32), None, None, None, None, True, 0.1, 1e-5)),
        (TypeError, r"batch_norm_forward: x must be a numpy.ndarray, got list",
         lambda: fwd([[1.0]], None, None, None, None, True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: weight must have shape \(3,\).*\(4,\)",
         lambda: fwd(x, np.zeros(4, np.float32), None, None, None, True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: running_var must have shape \(3,\)",
         lambda: fwd(x, None, None, c3.copy(), np.zeros((3, 1), np.float32), True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: give both", lambda: fwd(x, None, None, c3.copy(), None, True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: evaluation needs", lambda: fwd(x, None, None, None, None, False, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: .*1 value per channel",
         lambda: fwd(x[:1], None, None, c3.copy(), c3.copy(), True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_forward: running_mean is read-only",
         lambda: fwd(x, None, None, np.broadcast_to(np.float32(0), (3,)), c3.copy(), True, 0.1, 1e-5)),
        (ValueError, r"batch_norm_backward: gy \(4, 2\) must have the shape of x \(4, 3\)",
         lambda: bwd(np.zeros((4, 2), np.float32), x, None, c3, c3, True)),
        (TypeError, r"batch_norm_backward: gy must have dtype float32",
         lambda: bwd(x.astype(np.float64), x, None, c3, c3, True)),
        (ValueError, r"batch_norm_backward: invstd must have shape \(3,\)",
         lambda: bwd(x, x, None, c3, np.zeros(2, np.float32), True)),
    ]
    for exc, msg, call in cases:
        with pytest.raises(exc, match=msg):
            call()
