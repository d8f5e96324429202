"""BatchNorm, LayerNorm and GroupNorm: forward against NumPy, float64 gradient
checks in train and eval mode, running statistics against a hand-computed
update, and the error messages."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
import minitl.nn.functional as F
from minitl import nn
from minitl.core.gradcheck import gradcheck
from hypothesis_shapes import arrays, leaf


@st.composite
def bn_shape(draw):
    """(N, C, *spatial) with at least 2 values per channel."""
    n, c = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    spatial = draw(st.sampled_from([(), (2,), (2, 3), (1, 2)]))
    return (n, c) + spatial


def _np_bn(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * w.reshape(shape) + b.reshape(shape)


@given(data=st.data(), shape=bn_shape(), affine=st.booleans())
def test_batch_norm_train_forward_and_gradcheck(data, shape, affine):
    x = leaf(data.draw(arrays(shape)))
    c = shape[1]
    w = leaf(data.draw(arrays((c,), away_from_zero=True))) if affine else None
    b = leaf(data.draw(arrays((c,)))) if affine else None
    axes = (0,) + tuple(range(2, len(shape)))
    want = _np_bn(x.data, x.data.mean(axis=axes), x.data.var(axis=axes),
                  np.ones(c) if w is None else w.data, np.zeros(c) if b is None else b.data, 1e-5)
    got = F.batch_norm(x, None, None, w, b, training=True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-10)
    inputs = [x] + ([w, b] if affine else [])
    gradcheck(lambda *t: F.batch_norm(t[0], None, None, *(t[1:] if affine else (None, None)), training=True),
              inputs, mode="direction" if x.numel() > 30 else "full", atol=1e-5, rtol=1e-4)


@given(data=st.data(), shape=bn_shape())
def test_batch_norm_eval_forward_and_gradcheck(data, shape):
    c = shape[1]
    x = leaf(data.draw(arrays(shape)))
    w, b = leaf(data.draw(arrays((c,)))), leaf(data.draw(arrays((c,))))
    rm = minitl.tensor(data.draw(arrays((c,))).copy())
    rv = minitl.tensor(data.draw(arrays((c,), lo=0.2, hi=3.0)).copy())
    before = (rm.numpy().copy(), rv.numpy().copy())
    got = F.batch_norm(x, rm, rv, w, b, training=False)
    np.testing.assert_allclose(got.numpy(), _np_bn(x.data, rm.data, rv.data, w.data, b.data, 1e-5), rtol=1e-10)
    gradcheck(lambda *t: F.batch_norm(t[0], rm, rv, t[1], t[2], training=False), [x, w, b])
    # eval never touches the running statistics
    np.testing.assert_array_equal(rm.numpy(), before[0])
    np.testing.assert_array_equal(rv.numpy(), before[1])


def test_running_stats_match_a_hand_computed_update():
    rng = np.random.default_rng(3)
    batches = [rng.normal(loc=i, scale=1 + i, size=(4, 2, 3, 3)) for i in range(3)]
    for momentum in (0.1, 0.5, None):
        bn = nn.BatchNorm2d(2, momentum=momentum)
        mean, var = np.zeros(2), np.ones(2)
        for t, xb in enumerate(batches, start=1):
            bn(minitl.tensor(xb.astype(np.float32)))
            f = 1.0 / t if momentum is None else momentum
            m = xb.size // 2
            # PyTorch: r <- (1-f) r + f * stat, with the unbiased (m / (m-1)) batch variance
            mean = (1 - f) * mean + f * xb.mean(axis=(0, 2, 3))
            var = (1 - f) * var + f * xb.var(axis=(0, 2, 3)) * m / (m - 1)
            assert int(bn.num_batches_tracked.numpy()) == t
        np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5)
        np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5)
    # momentum=None is the plain average of the batch statistics
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(axis=(0, 2, 3)) for b in batches], 0),
                               rtol=1e-5)


def test_eval_mode_uses_running_stats_and_leaves_them_bit_identical():
    bn = nn.BatchNorm1d(3)
    x = minitl.tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    bn(x)
    state = {k: np.array(v, copy=True) for k, v in bn.state_dict().items()}
    bn.eval()
    y = bn(x).numpy()
    want = (x.numpy() - state["running_mean"]) / np.sqrt(state["running_var"] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), state[k])


def test_no_running_stats_and_no_affine():
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    assert list(bn.state_dict()) == [] and bn.running_mean is None
    x = np.random.default_rng(1).normal(size=(3, 2, 2, 2))
    y = bn(minitl.tensor(x)).numpy()  # batch statistics even in eval, as in PyTorch
    np.testing.assert_allclose(y, (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True)
                                                                                   + 1e-5), rtol=1e-6)


def test_batch_norm_keys_and_errors():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(minitl.tensor(np.zeros((1, 4, 1, 1), np.float32)))
    with pytest.raises(ValueError, match="4 .*3 channels|3 channels"):
        bn(minitl.tensor(np.zeros((2, 3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="rank 4"):
        bn(minitl.tensor(np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=2.0)


def test_nan_propagates_through_batch_norm():
    x = np.ones((3, 2), np.float32)
    x[0, 0] = np.nan
    y = nn.BatchNorm1d(2)(minitl.tensor(x)).numpy()
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()


@given(data=st.data(), lead=st.sampled_from([(2,), (2, 3)]), norm=st.sampled_from([(3,), (2, 3)]))
def test_layer_norm(data, lead, norm):
    x = leaf(data.draw(arrays(lead + norm)))
    w, b = leaf(data.draw(arrays(norm))), leaf(data.draw(arrays(norm)))
    axes = tuple(range(len(lead), len(lead) + len(norm)))
    want = (x.data - x.data.mean(axes, keepdims=True)) / np.sqrt(x.data.var(axes, keepdims=True) + 1e-5)
    np.testing.assert_allclose(F.layer_norm(x, norm, w, b).numpy(), want * w.data + b.data, rtol=1e-9, atol=1e-10)
    gradcheck(lambda *t: F.layer_norm(t[0], norm, t[1], t[2]), [x, w, b], mode="direction")
    layer = nn.LayerNorm(norm)
    assert list(layer.state_dict()) == ["weight", "bias"]


@given(data=st.data(), groups=st.sampled_from([1, 2, 4]), spatial=st.sampled_from([(), (2,), (2, 2)]))
def test_group_norm(data, groups, spatial):
    x = leaf(data.draw(arrays((2, 4) + spatial)))
    w, b = leaf(data.draw(arrays((4,)))), leaf(data.draw(arrays((4,))))
    xg = x.data.reshape(2, groups, -1)
    want = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + 1e-5)).reshape(x.shape)
    bshape = (1, 4) + (1,) * len(spatial)
    want = want * w.data.reshape(bshape) + b.data.reshape(bshape)
    np.testing.assert_allclose(F.group_norm(x, groups, w, b).numpy(), want, rtol=1e-9, atol=1e-10)
    gradcheck(lambda *t: F.group_norm(t[0], groups, t[1], t[2]), [x, w, b], mode="direction")
    with pytest.raises(ValueError, match="divisor"):
        F.group_norm(x, 3)
