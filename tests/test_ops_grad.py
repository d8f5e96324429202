"""Every differentiable op: forward against NumPy, backward against float64 central
differences, on hypothesis-drawn shapes, broadcastable pairs and non-contiguous inputs."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
from minitl.core.gradcheck import gradcheck
from hypothesis_shapes import arrays, broadcastable_pair, leaf, small_shapes

# (name, minitl op, NumPy reference, input bounds, keep away from zero)
UNARY = [
    ("neg", lambda x: -x, lambda a: -a, (-3, 3), False),
    ("exp", lambda x: x.exp(), np.exp, (-3, 3), False),
    ("log", lambda x: x.log(), np.log, (0.2, 4), False),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, (0.2, 4), False),
    ("tanh", lambda x: x.tanh(), np.tanh, (-3, 3), False),
    ("sigmoid", lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), (-5, 5), False),
    ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), (-3, 3), True),
    ("clip", lambda x: x.clip(-1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5), (-3, 3), True),
    ("pow_scalar", lambda x: x ** 3, lambda a: a ** 3, (-2, 2), False),
    ("rpow", lambda x: 2.0 ** x, lambda a: 2.0 ** a, (-2, 2), False),
    ("scalar_ops", lambda x: (3.0 - x) * 2.0 / 4.0 + 1.0, lambda a: (3.0 - a) * 2.0 / 4.0 + 1.0, (-2, 2), False),
]


@pytest.mark.parametrize("name,op,ref,bounds,away", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data(), shape=small_shapes)
def test_unary(name, op, ref, bounds, away, data, shape):
    a = data.draw(arrays(shape, *bounds, away_from_zero=away))
    if name == "clip":  # keep away from the clip bounds, where the derivative jumps
        a = np.where(np.abs(a + 1.0) < 0.1, a + 0.3, a)
        a = np.where(np.abs(a - 1.5) < 0.1, a + 0.3, a)
    x = leaf(a)
    np.testing.assert_allclose(op(x).numpy(), ref(a), rtol=1e-12, atol=1e-12)
    gradcheck(op, [x])


BINARY = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.divide),
    ("pow", lambda a, b: a ** b, np.power),
]


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@given(data=st.data(), shapes=broadcastable_pair())
def test_binary_broadcasting(name, op, ref, data, shapes):
    sa, sb = shapes
    lo = 0.5 if name == "pow" else -3.0
    a = data.draw(arrays(sa, lo, 3.0, away_from_zero=True))
    b = data.draw(arrays(sb, -2.0 if name == "pow" else -3.0, 2.0 if name == "pow" else 3.0,
                         away_from_zero=name == "div"))
    x, y = leaf(a), leaf(b)
    np.testing.assert_allclose(op(x, y).numpy(), ref(a, b), rtol=1e-12)
    gradcheck(op, [x, y])


@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4),
       batch=st.sampled_from([(), (2,), (1, 2)]), vec=st.sampled_from(["none", "left", "right", "both"]))
def test_matmul(data, n, k, m, batch, vec):
    sa = (k,) if vec in ("left", "both") else batch + (n, k)
    sb = (k,) if vec in ("right", "both") else (k, m)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    x, y = leaf(a), leaf(b)
    np.testing.assert_allclose((x @ y).numpy(), a @ b, rtol=1e-12)
    gradcheck(lambda p, q: p @ q, [x, y])


@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
       op=st.sampled_from(["sum", "mean", "max"]), keepdims=st.booleans(),
       axis=st.sampled_from([None, 0, 1, -1, (0, 2)]))
def test_reductions(data, shape, op, keepdims, axis):
    a = data.draw(arrays(shape))
    x = leaf(a)
    got = getattr(x, op)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(got.numpy(), getattr(a, op)(axis=axis, keepdims=keepdims), rtol=1e-12)
    gradcheck(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), [x])


def test_max_ties_share_the_gradient():
    x = minitl.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5])


@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
def test_shape_ops(data, shape):
    a = data.draw(arrays(shape))
    x = leaf(a)
    gradcheck(lambda t: t.reshape(-1, shape[-1]) * 1.0, [x])
    gradcheck(lambda t: t.permute(2, 0, 1) * np.arange(np.prod(shape)).reshape(shape[2], shape[0], shape[1]), [x])
    gradcheck(lambda t: t.transpose(0, 2).flatten() ** 2, [x])
    np.testing.assert_array_equal(x.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1))


@given(data=st.data(), n=st.integers(2, 6), idx=st.lists(st.integers(0, 5), min_size=1, max_size=8))
def test_indexing_accumulates_repeated_indices(data, n, idx):
    idx = [i % n for i in idx]
    a = data.draw(arrays((n, 3)))
    x = leaf(a)
    np.testing.assert_array_equal(x[idx].numpy(), a[idx])
    gradcheck(lambda t: t[idx] * 2.0, [x])
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[:, 0], np.bincount(idx, minlength=n))


@given(data=st.data())
def test_slices_and_masks(data):
    a = data.draw(arrays((4, 5)))
    x = leaf(a)
    gradcheck(lambda t: t[1:, ::2] ** 2, [x])
    gradcheck(lambda t: t[a > 0] * 3.0, [x])
    gradcheck(lambda t: t[:, 1], [x])
