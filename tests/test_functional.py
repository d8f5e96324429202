"""nn.functional: gradients against float64 numerical differences on drawn geometries,
and forward values against direct NumPy definitions."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.nn.functional as F
from minitl.core.gradcheck import gradcheck
from hypothesis_shapes import arrays, conv_geometry, leaf, pool_geometry

ACTS = [None, "relu", "tanh", "sigmoid"]


def direct_conv(x, w, b, stride, padding):
    """Convolution by its definition: a loop over output pixels."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


def _act(z, a):
    return {None: z, "relu": np.maximum(z, 0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z))}[a]


@given(data=st.data(), g=conv_geometry(), act=st.sampled_from(ACTS), bias=st.booleans())
def test_conv2d(data, g, act, bias):
    n, c, o, h, w, k, stride, pad = g
    x = leaf(data.draw(arrays((n, c, h, w))))
    wt = leaf(data.draw(arrays((o, c) + k)))
    b = leaf(data.draw(arrays((o,)))) if bias else None
    want = _act(direct_conv(x.data, wt.data, None if b is None else b.data, stride, pad), act)
    np.testing.assert_allclose(F.conv2d(x, wt, b, stride, pad, activation=act).numpy(), want, rtol=1e-10, atol=1e-12)
    if act == "relu":  # keep pre-activations off the kink at 0
        act = "tanh"
    inputs = [x, wt] + ([b] if bias else [])
    gradcheck(lambda *t: F.conv2d(t[0], t[1], t[2] if bias else None, stride, pad, activation=act), inputs,
              mode="direction" if x.numel() > 60 else "full")


@given(data=st.data(), n=st.integers(1, 4), i=st.integers(1, 6), o=st.integers(1, 5),
       act=st.sampled_from(ACTS), lead=st.sampled_from([(), (2,)]))
def test_linear(data, n, i, o, act, lead):
    x = leaf(data.draw(arrays(lead + (n, i))))
    w, b = leaf(data.draw(arrays((o, i)))), leaf(data.draw(arrays((o,))))
    np.testing.assert_allclose(F.linear(x, w, b, activation=act).numpy(), _act(x.data @ w.data.T + b.data, act),
                               rtol=1e-12)
    gradcheck(lambda *t: F.linear(*t, activation="tanh" if act == "relu" else act), [x, w, b])


@given(data=st.data(), g=pool_geometry(), kind=st.sampled_from(["max", "avg"]))
def test_pooling(data, g, kind):
    n, c, h, w, k, s = g
    # Distinct values so the max is unique and the numerical derivative is defined.
    a = np.random.default_rng(data.draw(st.integers(0, 10**6))).permutation(n * c * h * w).reshape(n, c, h, w) / 7.0
    x = leaf(a)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    want = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = a[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            want[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    np.testing.assert_allclose(fn(x, k, s).numpy(), want, rtol=1e-12)
    gradcheck(lambda t: fn(t, k, s), [x], eps=1e-4)


@given(data=st.data(), n=st.integers(1, 5), c=st.integers(2, 6), smoothing=st.sampled_from([0.0, 0.1, 0.5]),
       reduction=st.sampled_from(["mean", "sum", "none"]), scale=st.sampled_from([1.0, 30.0]))
def test_cross_entropy(data, n, c, smoothing, reduction, scale):
    logits = leaf(data.draw(arrays((n, c))) * scale)
    target = np.random.default_rng(data.draw(st.integers(0, 10**6))).integers(0, c, n)
    logp = logits.data - logits.data.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    per = -(1 - smoothing) * logp[np.arange(n), target] - smoothing / c * logp.sum(1)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = F.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    gradcheck(lambda t: F.cross_entropy(t, target, reduction=reduction, label_smoothing=smoothing), [logits])
    # nll_loss of log_softmax is the same loss, through unfused ops
    if smoothing == 0.0:
        nll = F.nll_loss(F.log_softmax(logits, axis=1), target, reduction=reduction)
        np.testing.assert_allclose(nll.numpy(), want, rtol=1e-10)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = minitl.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], requires_grad=True)
    loss = F.cross_entropy(logits, [0, 0])
    assert np.isfinite(loss.item()) and abs(loss.item() - 5e3) < 1e-3
    loss.backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 5)), axis=st.sampled_from([0, 1, -1]))
def test_softmax_family(data, shape, axis):
    x = leaf(data.draw(arrays(shape)))
    e = np.exp(x.data - x.data.max(axis, keepdims=True))
    np.testing.assert_allclose(F.softmax(x, axis).numpy(), e / e.sum(axis, keepdims=True), rtol=1e-12)
    gradcheck(lambda t: F.softmax(t, axis) * np.arange(1, shape[1] + 1), [x])
    gradcheck(lambda t: F.log_softmax(t, axis) * np.arange(1, shape[1] + 1), [x])


@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_mse_and_activations(data, shape):
    a, b = leaf(data.draw(arrays(shape))), leaf(data.draw(arrays(shape)), requires_grad=False)
    np.testing.assert_allclose(F.mse_loss(a, b).item(), ((a.data - b.data) ** 2).mean(), rtol=1e-12)
    gradcheck(lambda t: F.mse_loss(t, b, reduction="sum"), [a])
    gradcheck(lambda t: F.tanh(t) + F.sigmoid(t), [a])


def test_dropout_scales_and_is_seeded():
    x = minitl.ones(1000, 10)
    minitl.manual_seed(3)
    y1 = F.dropout(x, 0.3, training=True).numpy()
    minitl.manual_seed(3)
    y2 = F.dropout(x, 0.3, training=True).numpy()
    np.testing.assert_array_equal(y1, y2)
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y1 == 0).mean() - 0.3) < 0.02
    assert F.dropout(x, 0.3, training=False) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_ops_keep_dtype(dtype):
    x = minitl.tensor(np.ones((2, 3, 8, 8)), dtype=dtype)
    w = minitl.tensor(np.ones((4, 3, 3, 3)), dtype=dtype)
    y = F.max_pool2d(F.conv2d(x, w, activation="relu"), 2)
    assert y.dtype == dtype and y.shape == (2, 4, 3, 3)


@given(data=st.data(), g=conv_geometry(max_size=8), act=st.sampled_from(["relu", "tanh", None]),
       pool=st.sampled_from([(2, 2), (1, 2), (2, 1)]))
def test_conv2d_pool_matches_the_chain(data, g, act, pool):
    n, c, o, h, w, k, stride, pad = g
    oh, ow = (h + 2 * pad[0] - k[0]) // stride[0] + 1, (w + 2 * pad[1] - k[1]) // stride[1] + 1
    if oh < pool[0] or ow < pool[1]:
        return
    x = leaf(data.draw(arrays((n, c, h, w))))
    wt, b = leaf(data.draw(arrays((o, c) + k))), leaf(data.draw(arrays((o,))))
    fused = F.conv2d_pool(x, wt, b, stride, pad, activation=act, pool=pool)
    chain = F.conv2d(x, wt, b, stride, pad, activation=act)
    np.testing.assert_allclose(fused.numpy(), F.max_pool2d(chain, pool).numpy(), rtol=1e-12)
    gradcheck(lambda *t: F.conv2d_pool(*t, stride, pad, activation="tanh" if act == "relu" else act, pool=pool),
              [x, wt, b], mode="direction")
