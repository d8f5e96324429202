"""Hypothesis strategies for the kernel tests: geometries, dtypes, layouts.

Every array can come back in a non-C-contiguous layout (Fortran order, a
strided slice of a larger array, or a transposed view), so the native
kernels are checked on the arrays autograd actually hands them.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

DTYPES = st.sampled_from([np.float32, np.float64])
ACTIVATIONS = st.sampled_from([None, "relu", "tanh", "sigmoid"])
LAYOUTS = st.sampled_from(["c", "f", "strided", "transposed"])
NEEDS = st.tuples(st.booleans(), st.booleans(), st.booleans())


def arrange(a: np.ndarray, layout: str) -> np.ndarray:
    """The values of ``a`` in the given memory layout (same shape, same values)."""
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(a, 0, -1)).swapaxes(0, -1)
    return np.ascontiguousarray(a)


@st.composite
def arrays(draw, shape, dtype, scale=1.0, layout=None):
    """Standard-normal values of ``shape`` in a drawn (or given) layout."""
    seed = draw(st.integers(0, 2**32 - 1))
    a = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    return arrange(a, layout or draw(LAYOUTS))


@st.composite
def conv_geometries(draw, max_size=11):
    """(N, C, H, W, O, kernel, stride, padding) with at least one output pixel.

    Covers 1x1 kernels, stride larger than the kernel, padding of half the
    kernel or more, and batch 1.
    """
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    o = draw(st.sampled_from([1, 2, 3, 5, 7, 12, 16, 17]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    h = draw(st.integers(max(1, kh - 2 * ph), max_size))
    w = draw(st.integers(max(1, kw - 2 * pw), max_size))
    return n, c, h, w, o, (kh, kw), (sh, sw), (ph, pw)


@st.composite
def pool_geometries(draw):
    """(N, C, H, W, kernel, stride), overlapping windows included."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h = draw(st.integers(kh, 12))
    w = draw(st.integers(kw, 12))
    return draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w, (kh, kw), (sh, sw)


@st.composite
def batchnorm_shapes(draw):
    """(N, C) or (N, C, H, W) with at least 2 values per channel (the unbiased variance)."""
    c = draw(st.integers(1, 6))
    if draw(st.booleans()):
        return (draw(st.integers(2, 9)), c)
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if n * h * w < 2:
        n = 2
    return (n, c, h, w)
