"""The C++ CPU kernels (minitl._C via minitl.kernels.cpu) against the reference.

Forward and backward on hypothesis-drawn geometries; float64 must agree to
1e-10 and float32 to 1e-5, both relative to the largest magnitude of the
reference result (elementwise relative error is meaningless where a sum
cancels to near zero). Bad arguments must raise Python exceptions that name
the shapes. Without a built extension the tests skip, unless
MINITL_REQUIRE_NATIVE=1 (CI), where a missing extension is a failure.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl import kernels
from minitl.kernels import fused_reference as FR
from minitl.kernels import cpu as N
from minitl.kernels import reference as R

from hypothesis_kernels import (
    ACTIVATIONS, DTYPES, NEEDS, arrange, arrays, conv_geometries, pool_geometries,
)

REQUIRE = os.environ.get("MINITL_REQUIRE_NATIVE") == "1"
if not N.AVAILABLE and not REQUIRE:
    pytest.skip(f"C++ kernels not built: {N.STATUS}", allow_module_level=True)

TOL = {np.float32: 1e-5, np.float64: 1e-10}


def test_extension_is_built():
    """Fails (never skips) under MINITL_REQUIRE_NATIVE=1 when _C is missing."""
    assert N.AVAILABLE, N.STATUS
    assert N.NAME == "cpu"
    assert N.STATUS and "\n" not in N.STATUS


def close(got, want, dtype, what=""):
    """Agreement to TOL relative to the largest magnitude of ``want``."""
    if want is None:
        assert got is None, f"{what}: expected None"
        return
    assert got is not None, f"{what}: got None"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} > {TOL[dtype]:.0e} * {scale:.3g}"


# --------------------------------------------------------------- dispatch
def test_dispatch_picks_native_and_reference_can_be_forced():
    try:
        kernels.use("native")
        assert set(kernels.active().values()) == {"cpu"}
        kernels.use("reference")
        assert set(kernels.active().values()) == {"reference"}
    finally:
        kernels.use("native")


def _run(code, **env):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_env_forces_reference_and_sets_threads():
    code = "import minitl; print(set(minitl.kernels.active().values()), minitl.get_num_threads())"
    assert _run(code, MINITL_KERNELS="reference") .startswith("{'reference'}")
    assert _run(code, OMP_NUM_THREADS="1").endswith(" 1")


def test_set_num_threads_round_trips_and_gives_same_results():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((9, 5, 10, 10)).astype(np.float32)
    old = N.get_num_threads()
    try:
        results = []
        openmp = N._C.build_info()["openmp"]
        for n in (1, 2):
            N.set_num_threads(n)
            assert N.get_num_threads() == (n if openmp else 1)  # serial builds stay at 1
            results.append(N.conv2d_backward(gy, x, w, None, (1, 1), (0, 0), None, (True, True, True)))
        for a, b in zip(*results):  # chunked accumulation: bit-identical for any thread count
            np.testing.assert_array_equal(a, b)
    finally:
        N.set_num_threads(old)


# ----------------------------------------------------------------- matmul
@given(st.integers(1, 140), st.integers(1, 300), st.integers(1, 50), DTYPES,
       st.sampled_from(["c", "f", "strided", "transposed"]), st.data())
def test_own_gemm_matches_numpy(m, k, n, dtype, layout, data):
    a = data.draw(arrays((m, k), dtype, layout=layout))
    b = data.draw(arrays((k, n), dtype))
    want = (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype)
    close(N._C.matmul(a, b), want, dtype, "matmul")


# ----------------------------------------------------------------- linear
@given(st.integers(1, 9), st.integers(1, 40), st.integers(1, 40), DTYPES, ACTIVATIONS,
       st.booleans(), NEEDS, st.data())
def test_linear(n, fin, fout, dtype, act, bias, needs, data):
    x = data.draw(arrays((n, fin), dtype))
    w = data.draw(arrays((fout, fin), dtype))
    b = data.draw(arrays((fout,), dtype)) if bias else None
    y = N.linear_forward(x, w, b, act)
    yr = R.linear_forward(x.copy(), w, b, act)
    close(y, yr, dtype, "y")
    gy = data.draw(arrays(y.shape, dtype))
    got = N.linear_backward(gy, x, w, y, act, needs)
    want = R.linear_backward(gy, x, w, yr, act, needs)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, name)


# ------------------------------------------------------------------- conv
def check_conv(geom, dtype, act, bias, needs, data):
    n, c, h, w_, o, k, s, p = geom
    x = data.draw(arrays((n, c, h, w_), dtype))
    w = data.draw(arrays((o, c) + k, dtype, scale=0.5))
    b = data.draw(arrays((o,), dtype)) if bias else None
    y = N.conv2d_forward(x, w, b, s, p, act)
    yr = R.conv2d_forward(x, w, b, s, p, act)
    close(y, yr, dtype, "y")
    gy = data.draw(arrays(y.shape, dtype))
    got = N.conv2d_backward(gy, x, w, y, s, p, act, needs)
    want = R.conv2d_backward(gy, x, w, yr, s, p, act, needs)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, f"{name} for {geom}")


@given(conv_geometries(), DTYPES, ACTIVATIONS, st.booleans(), NEEDS, st.data())
def test_conv2d(geom, dtype, act, bias, needs, data):
    check_conv(geom, dtype, act, bias, needs, data)


@pytest.mark.parametrize("geom", [
    (1, 1, 28, 28, 6, (5, 5), (1, 1), (2, 2)),   # LeNet conv1, batch 1
    (3, 6, 14, 14, 16, (5, 5), (1, 1), (0, 0)),  # LeNet conv2
    (2, 3, 7, 6, 4, (1, 1), (1, 1), (0, 0)),     # 1x1
    (2, 3, 9, 9, 2, (1, 1), (3, 3), (0, 0)),     # stride > kernel
    (2, 2, 5, 6, 3, (2, 2), (3, 3), (1, 1)),     # stride > kernel, padded
    (1, 2, 4, 5, 3, (3, 3), (1, 1), (3, 3)),     # padding = kernel
    (2, 2, 6, 4, 2, (3, 2), (2, 1), (2, 1)),     # padding >= kernel/2, mixed strides
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0)),     # a single pixel
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_conv2d_odd_sizes(geom, dtype, data):
    check_conv(geom, dtype, "relu", True, (True, True, True), data)


def test_conv2d_frozen_costs_nothing():
    x = np.ones((2, 1, 6, 6), np.float32)
    w = np.ones((3, 1, 3, 3), np.float32)
    y = N.conv2d_forward(x, w, None, (1, 1), (0, 0), "relu")
    assert N.conv2d_backward(y, x, w, y, (1, 1), (0, 0), "relu", (False, False, False)) == (None, None, None)
    dx, dw, db = N.conv2d_backward(y, x, w, y, (1, 1), (0, 0), "relu", (False, True, True))
    assert dx is None and dw.shape == w.shape and db.shape == (3,)


# -------------------------------------------------------- fused conv + pool
@given(st.integers(1, 3), st.integers(1, 3), st.integers(4, 12), st.integers(4, 12), st.integers(1, 6),
       st.integers(1, 4), st.integers(0, 2), st.sampled_from([(2, 2), (3, 2), (1, 1)]), DTYPES,
       ACTIVATIONS, st.booleans(), NEEDS, st.data())
def test_conv2d_pool(n, c, h, w_, o, k, p, pool, dtype, act, bias, needs, data):
    if h + 2 * p < k + pool[0] - 1 or w_ + 2 * p < k + pool[1] - 1:
        return
    x = data.draw(arrays((n, c, h, w_), dtype))
    w = data.draw(arrays((o, c, k, k), dtype, scale=0.5))
    b = data.draw(arrays((o,), dtype)) if bias else None
    s, pp = (1, 1), (p, p)
    y, idx = N.conv2d_pool_forward(x, w, b, s, pp, act, pool)
    yr, idxr = FR.conv2d_pool_forward(x, w, b, s, pp, act, pool)
    close(y, yr, dtype, "y")
    gy = data.draw(arrays(y.shape, dtype))
    got = N.conv2d_pool_backward(gy, x, w, y, idx, s, pp, act, pool, needs)
    # The reference backward on the reference indices: equal unless a float
    # tie in a window was broken differently, which random data never hits.
    np.testing.assert_array_equal(idx, idxr)
    want = FR.conv2d_pool_backward(gy, x, w, yr, idxr, s, pp, act, pool, needs)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, name)


# ---------------------------------------------------------------- pooling
@given(pool_geometries(), DTYPES, st.data())
def test_max_pool(geom, dtype, data):
    n, c, h, w, k, s = geom
    x = data.draw(arrays((n, c, h, w), dtype))
    y, idx = N.max_pool2d_forward(x, k, s)
    yr, idxr = R.max_pool2d_forward(x, k, s)
    close(y, yr, dtype, "y")
    np.testing.assert_array_equal(idx, idxr)
    gy = data.draw(arrays(y.shape, dtype))
    want = R.max_pool2d_backward(gy, idxr, x.shape, k, s)
    close(N.max_pool2d_backward(gy, idx, x.shape, k, s), want, dtype, "dx (int32 indices)")
    close(N.max_pool2d_backward(gy, idxr.astype(np.int64), x.shape, k, s), want, dtype, "dx (int64)")


@pytest.mark.parametrize("shape,k,s", [((2, 3, 20, 21), (2, 2), (2, 2)), ((1, 2, 9, 9), (3, 3), (2, 2))])
def test_max_pool_ties_go_to_the_first(shape, k, s):
    """Integer-valued input: many ties, broken as NumPy's argmax does (SIMD path included)."""
    x = np.random.default_rng(0).integers(0, 3, shape).astype(np.float32)
    y, idx = N.max_pool2d_forward(x, k, s)
    yr, idxr = R.max_pool2d_forward(x, k, s)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, idxr)
    # The fused op with an identity 1x1 conv pools x itself.
    yf, idxf = N.conv2d_pool_forward(x, np.eye(shape[1], dtype=np.float32)[:, :, None, None], None,
                                     (1, 1), (0, 0), None, k if k == s else (2, 2))
    yfr, idxfr = FR.conv2d_pool_forward(x, np.eye(shape[1], dtype=np.float32)[:, :, None, None], None,
                                        (1, 1), (0, 0), None, k if k == s else (2, 2))
    np.testing.assert_array_equal(idxf, idxfr)
    np.testing.assert_array_equal(yf, yfr)


@given(pool_geometries(), DTYPES, st.data())
def test_avg_pool(geom, dtype, data):
    n, c, h, w, k, s = geom
    x = data.draw(arrays((n, c, h, w), dtype))
    y = N.avg_pool2d_forward(x, k, s)
    close(y, R.avg_pool2d_forward(x, k, s), dtype, "y")
    gy = data.draw(arrays(y.shape, dtype))
    close(N.avg_pool2d_backward(gy, x.shape, k, s), R.avg_pool2d_backward(gy, x.shape, k, s), dtype, "dx")


# ----------------------------------------------------------- cross-entropy
@given(st.integers(1, 20), st.integers(1, 12), DTYPES, st.sampled_from([0.0, 0.1, 1.0]),
       st.sampled_from([np.int64, np.int32, np.uint8]), st.data())
def test_cross_entropy(n, c, dtype, smoothing, tdtype, data):
    z = data.draw(arrays((n, c), dtype, scale=5.0))
    t = np.random.default_rng(n * c).integers(0, c, n).astype(tdtype)
    losses, probs = N.cross_entropy_forward(z, t, smoothing)
    lr, pr = R.cross_entropy_forward(z, t.astype(np.int64), smoothing)
    close(losses, lr, dtype, "losses")
    close(probs, pr, dtype, "probs")
    g = data.draw(arrays((n,), dtype))
    close(N.cross_entropy_backward(g, probs, t, smoothing),
          R.cross_entropy_backward(g, pr, t.astype(np.int64), smoothing), dtype, "dlogits")


# -------------------------------------------------------------- optimizers
SHAPES = [(3, 4), (7,), (2, 3, 2), (1,)]


def _params(dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


@given(DTYPES, st.sampled_from([0.0, 0.9]), st.sampled_from([0.0, 0.3]), st.booleans(),
       st.sampled_from([0.0, 1e-2]), st.integers(0, 1000))
def test_sgd_step(dtype, momentum, dampening, nesterov, wd, seed):
    if nesterov and (momentum == 0 or dampening):
        return
    p, g, buf = _params(dtype, seed), _params(dtype, seed + 1), _params(dtype, seed + 2)
    pr, bufr = [a.copy() for a in p], [a.copy() for a in buf]
    for first in (True, False, False):
        N.sgd_step(p, g, buf if momentum else [None] * 4, 0.1, momentum, dampening, nesterov, wd, first)
        R.sgd_step(pr, g, bufr, 0.1, momentum, dampening, nesterov, wd, first)
        for a, b in zip(p + (buf if momentum else []), pr + (bufr if momentum else [])):
            close(a, b, dtype, "sgd")


@given(DTYPES, st.sampled_from([0.0, 1e-2]), st.booleans(), st.integers(0, 1000))
def test_adam_step(dtype, wd, decoupled, seed):
    p, g = _params(dtype, seed), _params(dtype, seed + 1)
    m, v = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
    pr, mr, vr = [a.copy() for a in p], [a.copy() for a in m], [a.copy() for a in v]
    for step in (1, 2, 3):
        N.adam_step(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled)
        R.adam_step(pr, g, mr, vr, step, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled)
    for a, b in zip(p + m + v, pr + mr + vr):
        close(a, b, dtype, "adam")


# --------------------------------------------------------- bad arguments
f32 = np.float32
X4 = np.zeros((2, 3, 8, 8), f32)
W4 = np.zeros((4, 3, 3, 3), f32)
BAD = [
    ("dtype int", lambda: N.linear_forward(np.zeros((2, 3), np.int64), np.zeros((4, 3), f32), None, None),
     TypeError, "(2, 3)"),
    ("float16", lambda: N.conv2d_forward(X4.astype(np.float16), W4, None, (1, 1), (0, 0), None),
     TypeError, "(2, 3, 8, 8)"),
    ("mixed dtypes", lambda: N.conv2d_forward(X4, W4.astype(np.float64), None, (1, 1), (0, 0), None),
     TypeError, "(4, 3, 3, 3)"),
    ("rank", lambda: N.conv2d_forward(X4[0], W4, None, (1, 1), (0, 0), None), ValueError, "(3, 8, 8)"),
    ("channels", lambda: N.conv2d_forward(X4, W4[:, :2], None, (1, 1), (0, 0), None), ValueError,
     "(4, 2, 3, 3)"),
    ("bias", lambda: N.conv2d_forward(X4, W4, np.zeros(5, f32), (1, 1), (0, 0), None), ValueError, "(5,)"),
    ("kernel too big", lambda: N.conv2d_forward(X4[..., :2, :2], W4, None, (1, 1), (0, 0), None),
     ValueError, "(2, 3, 2, 2)"),
    ("zero stride", lambda: N.conv2d_forward(X4, W4, None, (0, 1), (0, 0), None), ValueError, "stride"),
    ("gy shape", lambda: N.conv2d_backward(np.zeros((2, 4, 5, 5), f32), X4, W4, None, (1, 1), (0, 0), None),
     ValueError, "(2, 4, 5, 5)"),
    ("in_features", lambda: N.linear_forward(np.zeros((2, 3), f32), np.zeros((4, 5), f32), None, None),
     ValueError, "(4, 5)"),
    ("activation", lambda: N.linear_forward(np.zeros((2, 3), f32), np.zeros((4, 3), f32), None, "gelu"),
     ValueError, "gelu"),
    ("list input", lambda: N.linear_forward([[1.0]], np.zeros((1, 1), f32), None, None), TypeError, "list"),
    ("target range", lambda: N.cross_entropy_forward(np.zeros((2, 3), f32), np.array([0, 3]), 0.0),
     IndexError, "3"),
    ("target shape", lambda: N.cross_entropy_forward(np.zeros((2, 3), f32), np.array([0, 1, 2]), 0.0),
     ValueError, "(3,)"),
    ("float target", lambda: N.cross_entropy_forward(np.zeros((2, 3), f32), np.zeros(2), 0.0),
     TypeError, "float64"),
    ("pool indices", lambda: N.max_pool2d_backward(np.ones((1, 1, 2, 2), f32), np.full((1, 1, 2, 2), 99),
                                                   (1, 1, 4, 4), (2, 2), (2, 2)), IndexError, "4x4"),
    ("pool window", lambda: N.max_pool2d_forward(np.zeros((1, 1, 2, 2), f32), (3, 3), (1, 1)),
     ValueError, "(1, 1, 2, 2)"),
    ("sgd shapes", lambda: N.sgd_step([np.zeros(3, f32)], [np.zeros(4, f32)], [None], 0.1, 0, 0, False, 0,
                                      False), ValueError, "(4,)"),
    ("sgd read-only", lambda: N.sgd_step([np.zeros(3, f32)[::2]], [np.zeros(2, f32)], [None], 0.1, 0, 0, False,
                                         0, False), ValueError, "(2,)"),
    ("adam lengths", lambda: N.adam_step([np.zeros(3, f32)], [], [], [], 1, 1e-3, 0.9, 0.999, 1e-8, 0, False),
     ValueError, "grads"),
]


@pytest.mark.parametrize("name,call,exc,text", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise_with_shapes(name, call, exc, text):
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value), str(info.value)


def test_non_contiguous_inputs_layouts():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    want = R.conv2d_forward(x, w, None, (1, 1), (1, 1), "tanh")
    for layout in ("f", "strided", "transposed"):
        close(N.conv2d_forward(arrange(x, layout), arrange(w, layout), None, (1, 1), (1, 1), "tanh"),
              want, np.float64, layout)
