"""Hypothesis strategies: shapes, broadcastable pairs, float64 arrays that are
sometimes non-contiguous, and conv/pool geometries."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minitl

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
matrix_sides = st.integers(1, 5)


@st.composite
def arrays(draw, shape, lo=-3.0, hi=3.0, away_from_zero=False):
    """float64 array of ``shape``; half the time a transposed (non-contiguous) view."""
    shape = tuple(shape)
    transposed = draw(st.booleans()) and len(shape) >= 2
    base_shape = shape[::-1] if transposed else shape
    seed = draw(st.integers(0, 2**31 - 1))
    a = np.random.default_rng(seed).uniform(lo, hi, size=base_shape)
    if away_from_zero:
        a = np.where(np.abs(a) < 0.3, np.sign(a + 1e-12) * 0.3 + a, a)
    return a.T if transposed else a


@st.composite
def broadcastable_pair(draw):
    """Two shapes that broadcast together (NumPy rules), possibly of different rank."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4))
    return shapes.input_shapes


def leaf(a, requires_grad=True):
    """A float64 leaf tensor over ``a`` (keeping its strides)."""
    t = minitl.Tensor(a, dtype=np.float64, requires_grad=requires_grad)
    t.data = a  # keep non-contiguous layouts: the point is to test them
    return t


@st.composite
def conv_geometry(draw, max_batch=2, max_channels=3, max_size=7):
    """(batch, in_ch, out_ch, H, W, kh, kw, stride, padding) with at least one output pixel."""
    n = draw(st.integers(1, max_batch))
    c = draw(st.integers(1, max_channels))
    o = draw(st.integers(1, max_channels))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    h = draw(st.integers(max(1, kh - 2 * ph), max_size))
    w = draw(st.integers(max(1, kw - 2 * pw), max_size))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return n, c, o, h, w, (kh, kw), stride, (ph, pw)


@st.composite
def pool_geometry(draw, max_size=7):
    """(N, C, H, W, kernel, stride) with the window fitting the input."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(kh, max_size)), draw(st.integers(kw, max_size))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return n, c, h, w, (kh, kw), stride
