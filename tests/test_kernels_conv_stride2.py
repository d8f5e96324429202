"""The strided conv path of the C++ kernels (csrc/cpu/conv_strided.h) on the ResNet shapes.

3x3 stride 2 padding 1 and 1x1 stride 2 padding 0 (the first conv of
layer2/3/4 and its downsample), forward and backward (every need_dx /
need_dw / need_db combination, with and without bias, every activation),
float32 and float64, against the NumPy reference, on every instruction-set
variant this CPU runs. Channel counts cross the register tiles (6 rows;
2, 8, 16 or 32 columns), sizes include odd H and W (the last row or column
of the input then lies in no window of a 1x1 stride-2 conv and gets a zero
gradient), and batches cross the fixed 4-sample chunks of the weight
gradient. Results are bit-identical for 1 and 2 threads and run to run.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl.kernels import cpu as N
from minitl.kernels import reference as R

from hypothesis_kernels import ACTIVATIONS, DTYPES, NEEDS, arrays
from test_kernels_isa import VARIANTS, isa, threads
from test_kernels_native import close

if not N.AVAILABLE and os.environ.get("MINITL_REQUIRE_NATIVE") != "1":
    pytest.skip(f"C++ kernels not built: {N.STATUS}", allow_module_level=True)

C = N._C
# (kernel, stride, padding): the ResNet's strided convs, then other strides the same path takes.
RESNET = [((3, 3), (2, 2), (1, 1)), ((1, 1), (2, 2), (0, 0))]
OTHER = [((3, 3), (2, 2), (0, 0)), ((3, 3), (3, 3), (1, 1)), ((2, 2), (2, 2), (0, 0)),
         ((3, 1), (2, 1), (1, 0)), ((1, 3), (1, 2), (0, 1)), ((5, 5), (2, 2), (2, 2)),
         ((7, 7), (2, 2), (3, 3))]


@st.composite
def resnet_strided(draw, layers=RESNET):
    """(N, C, H, W, O, kernel, stride, padding) of a drawn strided conv."""
    k, s, p = draw(st.sampled_from(layers))
    n = draw(st.integers(1, 9))
    c = draw(st.sampled_from([1, 3, 5, 8, 16, 17]))
    o = draw(st.sampled_from([1, 2, 7, 16, 17, 32, 33]))
    h = draw(st.integers(max(1, k[0] - 2 * p[0]), 13))
    w = draw(st.integers(max(1, k[1] - 2 * p[1]), 13))
    return n, c, h, w, o, k, s, p


def check(geom, dtype, act, bias, needs, data, what):
    """Native forward and backward of geom against the reference."""
    n, c, h, w_, o, k, s, p = geom
    x = data.draw(arrays((n, c, h, w_), dtype))
    w = data.draw(arrays((o, c) + k, dtype, scale=0.5))
    b = data.draw(arrays((o,), dtype)) if bias else None
    y = C.conv2d_forward(x, w, b, s, p, act)
    yr = R.conv2d_forward(x, w, b, s, p, act)
    close(y, yr, dtype, f"y for {geom} [{what}]")
    gy = data.draw(arrays(y.shape, dtype))
    got = C.conv2d_backward(gy, x, w, y, s, p, act, needs)
    want = R.conv2d_backward(gy, x, w, yr, s, p, act, needs)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, f"{name} for {geom} [{what}]")


@pytest.mark.parametrize("name", VARIANTS)
@given(resnet_strided(), DTYPES, ACTIVATIONS, st.booleans(), NEEDS, st.data())
def test_resnet_strided_convs(name, geom, dtype, act, bias, needs, data):
    with isa(name):
        check(geom, dtype, act, bias, needs, data, name)


@pytest.mark.parametrize("name", VARIANTS)
@given(resnet_strided(OTHER), DTYPES, st.booleans(), NEEDS, st.data())
def test_other_strided_convs(name, geom, dtype, bias, needs, data):
    """Odd strides, stride larger than the kernel, mixed strides, the 7x7 stem."""
    with isa(name):
        check(geom, dtype, "relu", bias, needs, data, name)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("geom", [
    (64, 16, 32, 32, 32, (3, 3), (2, 2), (1, 1)),   # layer2's first conv, batch 64
    (64, 16, 32, 32, 32, (1, 1), (2, 2), (0, 0)),   # its downsample
    (64, 64, 8, 8, 128, (3, 3), (2, 2), (1, 1)),    # layer4's first conv
    (64, 64, 8, 8, 128, (1, 1), (2, 2), (0, 0)),
])
def test_resnet_shapes_full_size(name, geom):
    n, c, h, w_, o, k, s, p = geom
    rng = np.random.default_rng(o + k[0])
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = (rng.standard_normal((o, c) + k) / np.sqrt(c * k[0] * k[1])).astype(np.float32)
    with isa(name):
        y = C.conv2d_forward(x, w, None, s, p, None)
        got = C.conv2d_backward(y, x, w, None, s, p, None, (True, True, True))
    close(y, R.conv2d_forward(x, w, None, s, p, None), np.float32, f"y {geom}")
    for what, g, r in zip(("dx", "dw", "db"), got, R.conv2d_backward(y, x, w, None, s, p, None)):
        close(g, r, np.float32, f"{what} {geom}")


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_bit_identical_across_threads_and_runs(name, dtype):
    rng = np.random.default_rng(7)
    cases = []
    for k, s, p in RESNET:
        x = rng.standard_normal((19, 16, 15, 16)).astype(dtype)
        w = rng.standard_normal((32, 16) + k).astype(dtype)
        b = rng.standard_normal(32).astype(dtype)
        cases.append((x, w, b, s, p))

    def run():
        out = []
        for x, w, b, s, p in cases:
            y = C.conv2d_forward(x, w, b, s, p, "relu")
            out += [y, *C.conv2d_backward(np.cos(y), x, w, y, s, p, "relu")]
        return out

    with isa(name):
        with threads(1):
            one = run()
        with threads(2):
            two, again = run(), run()
    for i, (a, b, c) in enumerate(zip(one, two, again)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i}: 1 vs 2 threads [{name}]")
        np.testing.assert_array_equal(b, c, err_msg=f"output {i}: run to run [{name}]")


def test_odd_size_skipped_row_and_column_get_zero_gradient():
    """1x1 stride 2 on 5x5 reads rows/cols 0, 2, 4 only: dx is exactly zero elsewhere."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    w = np.ones((4, 3, 1, 1), np.float32)
    y = C.conv2d_forward(x, w, None, (2, 2), (0, 0), None)
    dx = C.conv2d_backward(np.ones_like(y), x, w, None, (2, 2), (0, 0), None, (True, False, False))[0]
    assert np.all(dx[:, :, 1::2, :] == 0) and np.all(dx[:, :, :, 1::2] == 0)
    assert np.all(dx[:, :, ::2, ::2] == 4)  # the sum over the 4 output channels
