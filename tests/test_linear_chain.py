"""The fused Linear chain (one graph node, or none under no_grad) and Sequential's
cached plan: float64 gradients against central differences, and bit-identical
results to running the layers one by one."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
from minitl import nn
from minitl.core.gradcheck import gradcheck
from minitl.models import MLP
from minitl.ops.linear_chain import LinearChain

ACTS = st.sampled_from([None, "relu", "tanh", "sigmoid"])


def _one_by_one(seq, x):
    """The unfused reference: each Linear called alone with the activation after it."""
    layers = list(seq)
    i = 0
    while i < len(layers):
        act = getattr(layers[i + 1], "activation", None) if i + 1 < len(layers) else None
        if isinstance(layers[i], nn.Linear) and act is not None:
            x, i = layers[i](x, activation=act), i + 2
        else:
            x, i = layers[i](x), i + 1
    return x


def _stack(widths, acts, bias=True, dtype=np.float32):
    layers = []
    for (a, b), act in zip(zip(widths, widths[1:]), acts):
        layers.append(nn.Linear(a, b, bias=bias))
        if act is not None:
            layers.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[act]())
    seq = nn.Sequential(*layers)
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    return seq


@given(widths=st.lists(st.integers(1, 5), min_size=3, max_size=5), n=st.integers(1, 4),
       bias=st.booleans(), data=st.data())
def test_chain_gradients_match_central_differences(widths, n, bias, data):
    acts = [data.draw(ACTS) for _ in widths[1:]]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x = minitl.tensor(rng.uniform(-2, 2, (n, widths[0])), requires_grad=True)
    params, flat = [], []
    for a, b in zip(widths, widths[1:]):
        w = minitl.tensor(rng.uniform(-1, 1, (b, a)), requires_grad=True)
        bb = minitl.tensor(rng.uniform(-1, 1, (b,)), requires_grad=True) if bias else None
        params += [w] + ([bb] if bias else [])
        flat += [w, bb]

    def fn(x, *ps):
        it = iter(ps)
        args = [(next(it), next(it) if bias else None) for _ in acts]
        return LinearChain.apply(x, *[t for pair in args for t in pair], activations=tuple(acts))

    gradcheck(fn, [x] + params, atol=1e-5, rtol=1e-4)


@given(widths=st.lists(st.integers(1, 6), min_size=3, max_size=5), n=st.integers(1, 5),
       bias=st.booleans(), frozen=st.lists(st.booleans(), min_size=4, max_size=4),
       x_grad=st.booleans(), data=st.data())
def test_sequential_chain_is_bit_identical_to_layer_by_layer(widths, n, bias, frozen, x_grad, data):
    minitl.manual_seed(data.draw(st.integers(0, 1000)))
    acts = [data.draw(ACTS) for _ in widths[1:]]
    seq = _stack(widths, acts, bias)
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    for m, f in zip(linears, frozen):
        for p in m.parameters():
            p.requires_grad = not f
    xa = np.random.default_rng(0).standard_normal((n, widths[0])).astype(np.float32)

    def run(fn):
        x = minitl.tensor(xa, requires_grad=x_grad)
        for p in seq.parameters():
            p.grad = None
        y = fn(seq, x)
        if y.requires_grad:
            (y * y).sum().backward()
        return y.numpy(), [None if p.grad is None else p.grad.numpy() for p in seq.parameters()], \
            None if x.grad is None else x.grad.numpy()

    fused, plain = run(lambda s, x: s(x)), run(_one_by_one)
    assert np.array_equal(fused[0], plain[0])
    assert len(fused[1]) == len(plain[1])
    for g1, g2 in zip(fused[1], plain[1]):
        assert (g1 is None) == (g2 is None)
        if g1 is not None:
            assert np.array_equal(g1, g2)
    assert (fused[2] is None) == (plain[2] is None)
    if fused[2] is not None:
        assert np.array_equal(fused[2], plain[2])
    with minitl.no_grad():
        assert np.array_equal(seq(minitl.tensor(xa)).numpy(), plain[0])


def test_inference_builds_no_graph_and_training_one_node():
    seq = _stack([6, 5, 4, 3], ["relu", "tanh", None])
    x = minitl.tensor(np.ones((2, 6), np.float32))
    with minitl.no_grad():
        y = seq(x)
    assert y._fn is None and not y.requires_grad
    y = seq(x)
    assert y._fn is LinearChain and y.requires_grad
    assert all(p is None or p._fn is None for p in y._parents)  # the chain is one node over leaves


def test_mlp_forward_equals_features_then_head():
    minitl.manual_seed(3)
    model = MLP(12, (7, 5), 4)
    x = minitl.tensor(np.random.default_rng(1).standard_normal((3, 12)).astype(np.float32))
    assert np.array_equal(model(x).numpy(), model.forward_head(model.forward_features(x)).numpy())
    model.reset_classifier(2)  # the cached body and plans follow the new head
    out = model(x)
    assert out.shape == (3, 2)
    assert np.array_equal(out.numpy(), model.head(model.forward_features(x)).numpy())


def test_plan_follows_replaced_and_appended_layers():
    seq = _stack([4, 3, 2], ["relu", None])
    x = minitl.tensor(np.ones((1, 4), np.float32))
    seq(x)
    seq[2] = nn.Linear(3, 5)
    assert seq(x).shape == (1, 5)
    seq.append(nn.Tanh())
    y = seq(x).numpy()
    assert np.all(np.abs(y) <= 1.0)
    assert np.array_equal(y, _one_by_one(seq, x).numpy())


def test_shared_weights_accumulate_like_separate_calls():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin, nn.Tanh(), lin)
    x = minitl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 5)
    seq(x).sum().backward()
    g = lin.weight.grad.numpy()
    lin.weight.grad = lin.bias.grad = None
    _one_by_one(seq, x).sum().backward()
    assert np.array_equal(g, lin.weight.grad.numpy())


def test_bad_input_still_names_the_layer():
    seq = _stack([4, 3, 2], ["relu", None])
    with pytest.raises(ValueError, match=r"Linear\(4, 3\).*4 features"):
        seq(minitl.tensor(np.ones((2, 5), np.float32)))
    with minitl.no_grad(), pytest.raises(ValueError, match=r"Linear\(4, 3\)"):
        seq(minitl.tensor(np.ones((2, 5), np.float32)))


def test_nan_propagates_through_the_chain():
    # (no activations: the C++ fused epilogues map NaN to a number today, chain or not)
    seq = _stack([3, 3, 2], [None, None])
    xa = np.array([[np.nan, 0.0, 1.0]], np.float32)
    with minitl.no_grad():
        assert np.isnan(seq(minitl.tensor(xa)).numpy()).all()


def test_backward_walk_runs_without_grad_and_restores_it_after_an_error():
    from minitl.core import grad_mode
    from minitl.core.function import Function

    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):  # d(2x) = 2
            seen.append(grad_mode.is_grad_enabled())
            if g.shape == (3,):
                raise ArithmeticError("probe")
            return 2 * g

    a = minitl.tensor(np.ones(2), requires_grad=True)
    (Probe.apply(Probe.apply(a)) * 1.0).sum().backward()  # a chain
    assert np.array_equal(a.grad.numpy(), [4.0, 4.0]) and seen == [False, False]
    b = minitl.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ArithmeticError):
        Probe.apply(b).sum().backward()
    assert grad_mode.is_grad_enabled()
