"""NaN and +-Inf through every C++ kernel exactly as through the reference.

NaN, +Inf and -Inf are placed at hypothesis-drawn positions of the input;
every forward result (and the backward results that depend on it) must have
NaN where the reference has NaN, the same infinities, and agree elsewhere.
A kernel that turns a NaN into 0 (a fused ReLU written ``v > 0 ? v : 0``) or
into a neighbour's value (a max-pool comparing with ``>`` only) lets a
diverging run train on with finite losses.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
from minitl.kernels import cpu as N
from minitl.kernels import fused_reference as FR
from minitl.kernels import reference as R
from minitl.nn import functional as F

from hypothesis_kernels import ACTIVATIONS, DTYPES, conv_geometries, pool_geometries

if not N.AVAILABLE and os.environ.get("MINITL_REQUIRE_NATIVE") != "1":
    pytest.skip(f"C++ kernels not built: {N.STATUS}", allow_module_level=True)

TOL = {np.float32: 1e-4, np.float64: 1e-10}
# The reference itself warns on inf - inf and 0 * inf; those NaNs are the point here.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
SPECIALS = st.sampled_from([np.nan, np.inf, -np.inf])


@st.composite
def poisoned(draw, shape, dtype):
    """Standard-normal values of ``shape`` with NaN/+Inf/-Inf at 1-3 drawn positions."""
    a = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    for _ in range(draw(st.integers(1, 3))):
        flat[draw(st.integers(0, flat.size - 1))] = draw(SPECIALS)
    return a


def same(got, want, dtype, what):
    """NaN where ``want`` has NaN, the same infinities, and closeness elsewhere."""
    if want is None:
        assert got is None, what
        return
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), \
        f"{what}: NaN at {np.argwhere(np.isnan(got) != np.isnan(want))[:3].tolist()} differs from the reference"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]) and not np.isinf(got[~inf]).any(), f"{what}: infinities differ"
    fin = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[fin]).max())) if fin.any() else 1.0
    assert np.allclose(got[fin], want[fin], rtol=0, atol=TOL[dtype] * scale), f"{what}: finite values differ"


@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), ACTIVATIONS, DTYPES, st.data())
def test_linear(n, fin, fout, act, dtype, data):
    x = data.draw(poisoned((n, fin), dtype))
    w = np.random.default_rng(1).standard_normal((fout, fin)).astype(dtype)
    b = np.random.default_rng(2).standard_normal(fout).astype(dtype)
    want = R.linear_forward(x, w, b, act)
    got = N.linear_forward(x, w, b, act)
    same(got, want, dtype, f"linear_forward {act}")
    gy = np.random.default_rng(3).standard_normal(want.shape).astype(dtype)
    for g, r, name in zip(N.linear_backward(gy, x, w, got, act), R.linear_backward(gy, x, w, want, act),
                          ("dx", "dw", "db")):
        same(g, r, dtype, f"linear_backward {act} {name}")


@given(conv_geometries(max_size=8), ACTIVATIONS, DTYPES, st.data())
def test_conv2d(geom, act, dtype, data):
    n, c, h, w_, o, k, s, p = geom
    x = data.draw(poisoned((n, c, h, w_), dtype))
    w = np.random.default_rng(1).standard_normal((o, c) + k).astype(dtype)
    b = np.random.default_rng(2).standard_normal(o).astype(dtype)
    want = R.conv2d_forward(x, w, b, s, p, act)
    got = N.conv2d_forward(x, w, b, s, p, act)
    same(got, want, dtype, f"conv2d_forward {act}")
    gy = np.random.default_rng(3).standard_normal(want.shape).astype(dtype)
    for g, r, name in zip(N.conv2d_backward(gy, x, w, got, s, p, act), R.conv2d_backward(gy, x, w, want, s, p, act),
                          ("dx", "dw", "db")):
        same(g, r, dtype, f"conv2d_backward {act} {name}")


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(2, 5), st.integers(2, 5),
       ACTIVATIONS, DTYPES, st.data())
def test_conv2d_pool(n, c, o, ph, pw, act, dtype, data):
    k = data.draw(st.sampled_from([(1, 1), (3, 3), (5, 5)]))
    pad = (k[0] // 2, k[1] // 2)
    x = data.draw(poisoned((n, c, 2 * ph, 2 * pw), dtype))
    w = np.random.default_rng(1).standard_normal((o, c) + k).astype(dtype)
    b = np.random.default_rng(2).standard_normal(o).astype(dtype)
    want, want_i = FR.conv2d_pool_forward(x, w, b, (1, 1), pad, act)
    got, got_i = N.conv2d_pool_forward(x, w, b, (1, 1), pad, act)
    same(got, want, dtype, f"conv2d_pool_forward {act}")
    assert np.array_equal(got_i, want_i), "conv2d_pool_forward: argmax indices differ"
    gy = np.random.default_rng(3).standard_normal(want.shape).astype(dtype)
    for g, r, name in zip(N.conv2d_pool_backward(gy, x, w, got, got_i, (1, 1), pad, act),
                          FR.conv2d_pool_backward(gy, x, w, want, want_i, (1, 1), pad, act), ("dx", "dw", "db")):
        same(g, r, dtype, f"conv2d_pool_backward {act} {name}")


@given(pool_geometries(), DTYPES, st.data())
def test_max_pool(geom, dtype, data):
    n, c, h, w, k, s = geom
    x = data.draw(poisoned((n, c, h, w), dtype))
    want, want_i = R.max_pool2d_forward(x, k, s)
    got, got_i = N.max_pool2d_forward(x, k, s)
    same(got, want, dtype, "max_pool2d_forward")
    assert np.array_equal(got_i, want_i), "max_pool2d_forward: indices differ (NaN must win, the first one)"
    gy = np.random.default_rng(3).standard_normal(want.shape).astype(dtype)
    same(N.max_pool2d_backward(gy, got_i, x.shape, k, s), R.max_pool2d_backward(gy, want_i, x.shape, k, s),
         dtype, "max_pool2d_backward")


@given(pool_geometries(), DTYPES, st.data())
def test_avg_pool(geom, dtype, data):
    n, c, h, w, k, s = geom
    x = data.draw(poisoned((n, c, h, w), dtype))
    same(N.avg_pool2d_forward(x, k, s), R.avg_pool2d_forward(x, k, s), dtype, "avg_pool2d_forward")


@given(st.integers(1, 6), st.integers(1, 12), st.sampled_from([0.0, 0.1]), DTYPES, st.data())
def test_cross_entropy(n, c, smoothing, dtype, data):
    z = data.draw(poisoned((n, c), dtype))
    t = np.random.default_rng(4).integers(0, c, n)
    want_l, want_p = R.cross_entropy_forward(z, t, smoothing)
    got_l, got_p = N.cross_entropy_forward(z, t, smoothing)
    same(got_l, want_l, dtype, "cross_entropy_forward losses")
    same(got_p, want_p, dtype, "cross_entropy_forward probs")
    g = np.ones(n, dtype=dtype)
    same(N.cross_entropy_backward(g, got_p, t, smoothing), R.cross_entropy_backward(g, want_p, t, smoothing),
         dtype, "cross_entropy_backward")


# ---------------------------------------------------- the examples
def test_fused_relu_conv_keeps_nan():
    x = minitl.tensor(np.full((1, 1, 3, 3), np.nan, np.float32))
    w = minitl.tensor(np.ones((1, 1, 3, 3), np.float32))
    assert np.isnan(F.conv2d(x, w, activation="relu").numpy()).all()


def test_max_pool_does_not_pick_a_neighbour_over_nan():
    x = np.array([[[[1.0, np.nan], [3.0, 2.0]]]], np.float32)
    y, idx = N.max_pool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(y).all() and idx.ravel().tolist() == [1]


def test_cross_entropy_with_nan_logits_has_a_nan_gradient():
    z = minitl.tensor(np.array([[0.0, np.nan, 1.0], [0.5, 0.2, 0.1]], np.float32), requires_grad=True)
    loss = F.cross_entropy(z, minitl.tensor(np.array([0, 2])))
    loss.backward()
    assert np.isnan(loss.item())
    assert np.isnan(z.grad.numpy()[0]).all() and np.isfinite(z.grad.numpy()[1]).all()


def test_a_nan_image_stops_fit_instead_of_training_on():
    from minitl.models import LeNet
    from minitl.optim import SGD
    from minitl.train import fit

    minitl.manual_seed(0)
    model = LeNet(in_channels=1, num_classes=3, input_size=28)
    x = minitl.tensor(np.full((4, 1, 28, 28), np.nan, np.float32))
    y = minitl.tensor(np.array([0, 1, 2, 0]))
    with pytest.raises(FloatingPointError, match="step 1"):
        fit(model, [(x, y)], SGD(model.parameters(), lr=0.01), steps=2, progress=False)
