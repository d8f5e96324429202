"""Conv2d -> eval BatchNorm2d (-> activation) folded into one conv (issue 11):
the folded forward against the layers run one by one over drawn geometries and
running statistics; every path that must not fold (training, gradients wanted,
no running statistics, hooks) bit-identical to the layers; ResNet and
Sequential through the fold; the feature cache folds; nothing is written."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
import minitl.nn.functional as F
from minitl import nn
from minitl.nn import conv_bn_fold
from minitl.nn.conv_bn_fold import conv_bn_act, fold_conv_bn, why_not_folded

from fold_helpers import cast_floats, fold_at_any_size, move_bn_stats  # noqa: F401 (autouse fixture)

ACTS = (None, "relu", "tanh", "sigmoid")


def _unfolded(conv, bn, x, activation=None):
    """The layers one by one, as before the fold existed."""
    y = bn(conv(x))
    return y if activation is None else F._ACTIVATION_FNS[activation](y)


@st.composite
def fold_case(draw):
    """(conv, bn, x) with any geometry: groups, dilation, stride, padding, bias, affine."""
    groups = draw(st.integers(1, 2))
    c, o = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = draw(st.sampled_from([1, 2]))
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("same")))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = (0, 0) if padding == "same" else padding
    h = draw(st.integers(max(1, dil * (kh - 1) + 1 - 2 * pads[0]), 7))
    w = draw(st.integers(max(1, dil * (kw - 1) + 1 - 2 * pads[1]), 7))
    conv = nn.Conv2d(c, o, (kh, kw), stride=stride, padding=padding, dilation=dil, groups=groups,
                     bias=draw(st.booleans()))
    bn = nn.BatchNorm2d(o, eps=draw(st.sampled_from([1e-5, 1e-3])), affine=draw(st.booleans()))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    move_bn_stats(bn, rng)
    x = rng.standard_normal((draw(st.integers(1, 2)), c, h, w))
    return conv, bn.eval(), x


@given(fold_case(), st.sampled_from(ACTS))
def test_folded_equals_the_unfolded_eval_forward_float64(case, activation):
    conv, bn, x = case
    cast_floats(conv, np.float64)
    cast_floats(bn, np.float64)
    x = minitl.tensor(x, dtype=np.float64)
    with minitl.no_grad():
        assert why_not_folded(conv, bn, x) is None
        got = conv_bn_act(conv, bn, x, activation)
        want = _unfolded(conv, bn, x, activation)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


@given(fold_case(), st.sampled_from(ACTS))
def test_folded_equals_the_unfolded_eval_forward_float32(case, activation):
    conv, bn, x = case
    x = minitl.tensor(x.astype(np.float32))
    with minitl.no_grad():
        got = conv_bn_act(conv, bn, x, activation)
        want = _unfolded(conv, bn, x, activation)
    assert got.dtype == np.float32
    scale = max(1.0, float(np.abs(want.numpy()).max()))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_fold_conv_bn_formula_and_dtype():
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, eps=1e-3)
    move_bn_stats(bn, np.random.default_rng(1))
    w, b = fold_conv_bn(conv, bn)
    s = bn.weight.data.astype(np.float64) / np.sqrt(bn.running_var.data.astype(np.float64) + 1e-3)
    assert w.dtype == b.dtype == np.float32
    np.testing.assert_allclose(w, conv.weight.data * s[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(b, (conv.bias.data - bn.running_mean.data) * s + bn.bias.data, rtol=1e-5,
                               atol=1e-6)


def _pair(bias=False, affine=True, seed=0):
    """Two identical (conv, bn) pairs, so a path that updates running statistics can
    be compared with another one."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(2):
        minitl.manual_seed(seed)
        conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.BatchNorm2d(4, affine=affine)
        move_bn_stats(bn, np.random.default_rng(seed))
        pairs.append((conv, bn))
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    return pairs, x


def _grads(modules):
    return [p.grad.numpy().copy() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("mode", ["train", "eval_grad_params", "eval_grad_input"])
@pytest.mark.parametrize("affine", [True, False])
def test_paths_that_need_gradients_or_train_are_not_folded_and_bit_identical(mode, affine):
    ((conv_a, bn_a), (conv_b, bn_b)), x_np = _pair(bias=True, affine=affine)
    for m in (conv_a, bn_a, conv_b, bn_b):
        m.train(mode == "train")
    if mode == "eval_grad_input":
        for m in (conv_a, bn_a, conv_b, bn_b):
            m.freeze()
    xa = minitl.tensor(x_np, requires_grad=mode == "eval_grad_input")
    xb = minitl.tensor(x_np, requires_grad=mode == "eval_grad_input")
    assert why_not_folded(conv_a, bn_a, xa) is not None
    ya = conv_bn_act(conv_a, bn_a, xa, "relu")
    yb = _unfolded(conv_b, bn_b, xb, "relu")
    assert np.array_equal(ya.numpy(), yb.numpy())
    assert np.array_equal(bn_a.running_mean.numpy(), bn_b.running_mean.numpy())
    assert np.array_equal(bn_a.running_var.numpy(), bn_b.running_var.numpy())
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    if mode == "eval_grad_input":
        assert np.array_equal(xa.grad.numpy(), xb.grad.numpy())
    else:
        for ga, gb in zip(_grads([conv_a, bn_a]), _grads([conv_b, bn_b])):
            assert np.array_equal(ga, gb)


def test_frozen_eval_pair_with_grad_mode_on_folds():
    # a frozen backbone under training: grad mode on, but nothing here wants a gradient
    ((conv, bn), _), x = _pair()
    conv.freeze()
    bn.freeze()
    bn.eval()
    x = minitl.tensor(x)
    assert minitl.is_grad_enabled() and why_not_folded(conv, bn, x) is None
    y = conv_bn_act(conv, bn, x, "relu")
    assert not y.requires_grad
    np.testing.assert_allclose(y.numpy(), _unfolded(conv, bn, x, "relu").numpy(), rtol=1e-5, atol=1e-5)


def test_no_running_statistics_uses_batch_statistics_in_eval_too():
    # PyTorch: track_running_stats=False normalises with the batch's statistics in eval mode
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, track_running_stats=False).eval()
    x = minitl.tensor(np.random.default_rng(2).standard_normal((3, 2, 6, 6)).astype(np.float32))
    with minitl.no_grad():
        assert "running statistics" in why_not_folded(conv, bn, x)
        y = conv_bn_act(conv, bn, x)
        assert np.array_equal(y.numpy(), bn(conv(x)).numpy())
    z = y.numpy()
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)


def test_hooked_or_subclassed_layers_run_unfolded():
    ((conv, bn), _), x = _pair()
    bn.eval()
    x = minitl.tensor(x)
    seen = []
    original = conv.forward

    def hook(inp):
        out = original(inp)
        seen.append(out.numpy().copy())
        return out
    object.__setattr__(conv, "forward", hook)
    with minitl.no_grad():
        assert "hooked" in why_not_folded(conv, bn, x)
        conv_bn_act(conv, bn, x)
    assert len(seen) == 1  # the hook saw the conv output, before BatchNorm
    conv.__dict__.pop("forward")

    class Scaled(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * 2.0
    sbn = Scaled(4).eval()
    with minitl.no_grad():
        assert why_not_folded(conv, sbn, x) is not None
        assert np.array_equal(conv_bn_act(conv, sbn, x).numpy(), sbn(conv(x)).numpy())


def test_bad_arguments_raise_named_errors():
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(5).eval()
    x = minitl.tensor(np.zeros((1, 2, 4, 4), np.float32))
    with minitl.no_grad():
        with pytest.raises(ValueError, match="BatchNorm2d\\(5\\)"):
            conv_bn_act(conv, bn, x)
        with pytest.raises(ValueError, match="activation"):
            conv_bn_act(conv, nn.BatchNorm2d(3).eval(), x, "gelu")


def test_nan_in_the_input_propagates_as_unfolded():
    ((conv, bn), _), x = _pair()
    bn.eval()
    x[0, 1, 2, 2] = np.nan
    x = minitl.tensor(x)
    with minitl.no_grad():
        got, want = conv_bn_act(conv, bn, x, "relu").numpy(), _unfolded(conv, bn, x, "relu").numpy()
    assert np.isnan(got).any() and np.array_equal(np.isnan(got), np.isnan(want))
    assert not np.isnan(got[1]).any()


def test_folded_weights_follow_changed_parameters_and_statistics():
    # recomputed per call: nothing can go stale after a step or a load
    ((conv, bn), _), x = _pair()
    bn.eval()
    x = minitl.tensor(x)
    with minitl.no_grad():
        first = conv_bn_act(conv, bn, x).numpy()
        bn.running_mean.data[...] += 1.0
        conv.weight.data[...] *= 0.5
        second = conv_bn_act(conv, bn, x).numpy()
        np.testing.assert_allclose(second, _unfolded(conv, bn, x).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(first, second)


def test_folding_can_be_turned_off_and_then_matches_bit_for_bit():
    ((conv, bn), _), x = _pair()
    bn.eval()
    x = minitl.tensor(x)
    previous = conv_bn_fold.set_folding(False)
    try:
        with minitl.no_grad():
            assert "turned off" in why_not_folded(conv, bn, x)
            assert np.array_equal(conv_bn_act(conv, bn, x, "relu").numpy(), _unfolded(conv, bn, x, "relu").numpy())
    finally:
        conv_bn_fold.set_folding(previous)
    with minitl.no_grad():
        assert (why_not_folded(conv, bn, x) is None) == previous


@pytest.mark.cost_rule
def test_cost_rule_runs_a_small_batch_through_a_wide_layer_unfolded():
    # fan-in 64*3*3 = 576: one 4x4 image has 16 output positions (2*16 < 576): unfolded,
    # bit for bit the layers one by one; 32 images have 512 (2*512 >= 576): folded.
    minitl.manual_seed(0)
    conv, bn = nn.Conv2d(64, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
    bn.eval()
    rng = np.random.default_rng(0)
    move_bn_stats(bn, rng)
    small = minitl.tensor(rng.standard_normal((1, 64, 4, 4)).astype(np.float32))
    big = minitl.tensor(rng.standard_normal((32, 64, 4, 4)).astype(np.float32))
    with minitl.no_grad():
        assert "cost more than it saves" in why_not_folded(conv, bn, small)
        np.testing.assert_array_equal(conv_bn_act(conv, bn, small, "relu").numpy(),
                                      F.relu(bn(conv(small))).numpy())
        assert why_not_folded(conv, bn, big) is None
