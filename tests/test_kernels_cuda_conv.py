"""The CUDA window kernels against the float64 reference: conv2d (and its split
weight-gradient reduction), conv2d + activation + max-pool, max/avg pooling,
and the rejection of shapes beyond the kernels' 32-bit offsets.

Backends (``emu`` and ``gpu``), poisoning and tolerances: see tests/cuda_fixtures.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cuda_fixtures import ACTS, DTYPES, _check, _cond_gy, _rand, _run, _swapped, dev, needs_st, seeds  # noqa: F401
from minitl.kernels import cuda_conv
from minitl.kernels import reference as ref


# -------------------------------------------------------------------- conv2d
@st.composite
def conv_geoms(draw):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 10)), draw(st.integers(1, 10))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, min(7, h + 2 * ph))), draw(st.integers(1, min(7, w + 2 * pw)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (o, c, kh, kw), (sh, sw), (ph, pw)


def _conv_case(dev, geom, act, bias, needs, dtype, seed):
    (xs, ws, stride, padding) = geom
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, xs, dtype), _rand(rng, ws, dtype)
    b = _rand(rng, (ws[0],), dtype) if bias else None
    d = lambda a: None if a is None else dev.to_dev(a.astype(dtype))  # noqa: E731
    y_ref = ref.conv2d_forward(x, w, b, stride, padding, act)
    _check("conv2d y", _run(dev, "conv2d_forward", d(x), d(w), d(b), stride, padding, act),
           y_ref, dtype)
    y_in = y_ref.astype(dtype).astype(np.float64)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.conv2d_backward(gy, x, w, y_in, stride, padding, act, needs)
    got = _run(dev, "conv2d_backward", d(gy), d(x), d(w), d(y_in), stride, padding, act,
               needs=needs)
    cond = ref.conv2d_backward(_cond_gy(gy, y_in, act), abs(x), abs(w), y_in, stride, padding, None,
                               needs)
    for name, g, r, c, need in zip(("dx", "dw", "db"), got, want, cond, needs):
        assert (g is None) == (not need), name
        if need:
            _check(f"conv2d {name}", g, r, dtype, c)


@given(geom=conv_geoms(), act=st.sampled_from(ACTS), bias=st.booleans(), needs=needs_st,
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_conv2d(dev, geom, act, bias, needs, dtype, seed):
    _conv_case(dev, geom, act, bias, needs, dtype, seed)


@pytest.mark.parametrize("splits", [2, 3, 7])
def test_conv2d_split_reduction(dev, splits):
    """The weight gradient summed over sample-splits by the second kernel."""
    with _swapped(_SPLITS=splits):
        geom = ((5, 3, 9, 8), (4, 3, 3, 2), (1, 2), (1, 0))
        for dtype in DTYPES:
            _conv_case(dev, geom, "tanh", True, (True, True, True), dtype, splits)
            _conv_case(dev, geom, None, True, (False, False, True), dtype, splits + 1)


# ------------------------------------------------------ conv2d + act + pool
@given(geom=conv_geoms(), pool=st.sampled_from([(2, 2), (1, 2), (2, 1), (1, 1), (1, 3), (3, 2)]),
       act=st.sampled_from(ACTS), bias=st.booleans(), needs=needs_st,
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_conv2d_pool(dev, geom, pool, act, bias, needs, dtype, seed):
    from minitl.kernels import fused_reference as fref

    xs, ws, stride, padding = geom
    oh = ref.conv_output_size(xs[2], ws[2], stride[0], padding[0])
    ow = ref.conv_output_size(xs[3], ws[3], stride[1], padding[1])
    assume(oh >= pool[0] and ow >= pool[1])
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, xs, dtype), _rand(rng, ws, dtype)
    b = _rand(rng, (ws[0],), dtype) if bias else None
    d = lambda a: None if a is None else dev.to_dev(a.astype(dtype))  # noqa: E731
    y_ref, idx_ref = fref.conv2d_pool_forward(x, w, b, stride, padding, act, pool)
    y, idx = _run(dev, "conv2d_pool_forward", d(x), d(w), d(b), stride, padding, act, pool)
    _check("conv2d_pool y", y, y_ref, dtype)
    if dtype == np.float64:  # float32 may break near-ties differently
        np.testing.assert_array_equal(idx, idx_ref)
    y_in = y_ref.astype(dtype).astype(np.float64)
    gy = _rand(rng, y_ref.shape, dtype)
    want = fref.conv2d_pool_backward(gy, x, w, y_in, idx_ref, stride, padding, act, pool, needs)
    got = _run(dev, "conv2d_pool_backward", d(gy), d(x), d(w), d(y_in), dev.to_dev(idx_ref),
               stride, padding, act, pool, needs=needs)
    cond = fref.conv2d_pool_backward(_cond_gy(gy, y_in, act), abs(x), abs(w), y_in, idx_ref, stride,
                                     padding, None, pool, needs)
    for name, g, r, c, need in zip(("dx", "dw", "db"), got, want, cond, needs):
        assert (g is None) == (not need), name
        if need:
            _check(f"conv2d_pool {name}", g, r, dtype, c)


# ------------------------------------------------------------------- pooling
@st.composite
def pool_geoms(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw)


@given(geom=pool_geoms(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_max_pool2d(dev, geom, dtype, seed):
    xs, kernel, stride = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, xs, dtype)
    y_ref, idx_ref = ref.max_pool2d_forward(x, kernel, stride)
    y, idx = _run(dev, "max_pool2d_forward", dev.to_dev(x.astype(dtype)), kernel, stride)
    _check("max_pool2d y", y, y_ref, dtype)
    np.testing.assert_array_equal(idx, idx_ref)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.max_pool2d_backward(gy, idx_ref, xs, kernel, stride)
    got = _run(dev, "max_pool2d_backward", dev.to_dev(gy.astype(dtype)),
               dev.to_dev(idx_ref), xs, kernel, stride)
    _check("max_pool2d dx", got, want, dtype)


@given(geom=pool_geoms(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_avg_pool2d(dev, geom, dtype, seed):
    xs, kernel, stride = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, xs, dtype)
    y_ref = ref.avg_pool2d_forward(x, kernel, stride)
    _check("avg_pool2d y", _run(dev, "avg_pool2d_forward", dev.to_dev(x.astype(dtype)),
                                kernel, stride), y_ref, dtype)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.avg_pool2d_backward(gy, xs, kernel, stride)
    got = _run(dev, "avg_pool2d_backward", dev.to_dev(gy.astype(dtype)), xs, kernel, stride)
    _check("avg_pool2d dx", got, want, dtype)



# ------------------------------------------- shapes beyond 32-bit offsets
@pytest.mark.parametrize("x_shape, w_shape, padding, what", [
    ((1, 40000, 300, 300), (8, 40000, 1, 1), 0, "one input sample"),
    ((2, 1, 46341, 46341), (1, 1, 1, 1), 0, "one input sample"),
    ((1, 1, 1, 1), (1, 1, 1, 1), 33000, "one output sample"),
    ((1, 2, 20000, 20000), (6, 2, 1, 1), 0, "one output sample"),
    ((1, 50000, 8, 8), (50000, 50000, 1, 1), 0, "the weight's size"),
])
def test_conv_rejects_samples_beyond_int32_offsets(x_shape, w_shape, padding, what):
    """Checked on the shapes alone: nothing of that size is allocated."""
    with pytest.raises(ValueError, match=rf"conv2d_forward: {what}.*above 2\*\*31 - 1"):
        cuda_conv._conv_geom("conv2d_forward", x_shape, w_shape, 1, padding)


def test_conv_accepts_the_largest_sample_that_fits():
    # (c*h + kh)*w + kw = (46340 + 1)*46340 + 1 = 2147441941 <= 2**31 - 1
    g = cuda_conv._conv_geom("conv2d_forward", (3, 1, 46340, 46340), (1, 1, 1, 1), 1, 0)
    assert g[11:] == (46340, 46340)


def test_pool_rejects_planes_beyond_int32_offsets():
    with pytest.raises(ValueError, match=r"max_pool2d_forward: one input plane, H\*W, is "
                                         r"2147488281 .*x=\(1, 1, 46341, 46341\)"):
        cuda_conv._pool_geom("max_pool2d_forward", (1, 1, 46341, 46341), 2, 2)
    assert cuda_conv._pool_geom("avg_pool2d_forward", (4, 3, 46340, 46340), 2, 2)[11] == 23170
