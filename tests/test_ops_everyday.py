"""The everyday ops of issue 10: forward against NumPy (or a hand-written reference), backward
against float64 central differences, over hypothesis-drawn shapes (broadcasting, non-contiguous
inputs, 0-d and empty tensors where they make sense); the same checks on CuPy, marked gpu."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minitl
import minitl.nn.functional as F
from minitl.core.gradcheck import gradcheck
from hypothesis_shapes import arrays, broadcastable_pair, leaf, small_shapes

_erf = np.vectorize(math.erf)


def _gelu(a):
    return 0.5 * a * (1 + _erf(a / math.sqrt(2)))


def _softplus(a):
    return np.logaddexp(0, a)


# name, op, reference, bounds, kinks (points to keep away from: the derivative jumps there)
UNARY = [
    ("abs", lambda x: x.abs(), np.abs, (-3, 3), [0]),
    ("sin", lambda x: x.sin(), np.sin, (-3, 3), []),
    ("cos", lambda x: minitl.cos(x), np.cos, (-3, 3), []),
    ("tan", lambda x: x.tan(), np.tan, (-1.2, 1.2), []),
    ("rsqrt", lambda x: x.rsqrt(), lambda a: 1 / np.sqrt(a), (0.2, 4), []),
    ("log2", lambda x: x.log2(), np.log2, (0.2, 4), []),
    ("log10", lambda x: x.log10(), np.log10, (0.2, 4), []),
    ("log1p", lambda x: x.log1p(), np.log1p, (-0.5, 3), []),
    ("expm1", lambda x: x.expm1(), np.expm1, (-3, 3), []),
    ("exp2", lambda x: x.exp2(), np.exp2, (-3, 3), []),
    ("erf", lambda x: x.erf(), _erf, (-4, 4), []),
    ("square", lambda x: x.square(), np.square, (-3, 3), []),
    ("reciprocal", lambda x: x.reciprocal(), lambda a: 1 / a, (0.3, 3), []),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda a: np.where(a > 0, a, 0.2 * a), (-3, 3), [0]),
    ("elu", lambda x: F.elu(x, 0.7), lambda a: np.where(a > 0, a, 0.7 * np.expm1(a)), (-3, 3), [0]),
    ("celu", lambda x: F.celu(x, 0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a / 0.5)), (-3, 3), [0]),
    ("selu", F.selu, lambda a: 1.0507009873554805 * np.where(a > 0, a, 1.6732632423543772 * np.expm1(a)),
     (-3, 3), [0]),
    ("gelu", F.gelu, _gelu, (-4, 4), []),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
     lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))), (-4, 4), []),
    ("silu", F.silu, lambda a: a / (1 + np.exp(-a)), (-4, 4), []),
    ("mish", F.mish, lambda a: a * np.tanh(_softplus(a)), (-4, 4), []),
    ("softplus", lambda x: F.softplus(x, beta=2.0), lambda a: _softplus(2 * a) / 2, (-4, 4), []),
    ("softsign", F.softsign, lambda a: a / (1 + np.abs(a)), (-3, 3), [0]),
    ("hardtanh", lambda x: F.hardtanh(x, -1.0, 0.5), lambda a: np.clip(a, -1.0, 0.5), (-3, 3), [-1, 0.5]),
    ("relu6", F.relu6, lambda a: np.clip(a, 0, 6), (-2, 8), [0, 6]),
    ("hardsigmoid", F.hardsigmoid, lambda a: np.clip(a / 6 + 0.5, 0, 1), (-5, 5), [-3, 3]),
    ("hardswish", F.hardswish, lambda a: a * np.clip(a + 3, 0, 6) / 6, (-5, 5), [-3, 3]),
    ("logsigmoid", F.logsigmoid, lambda a: -_softplus(-a), (-6, 6), []),
]


def _away(a, kinks):
    for k in kinks:
        a = np.where(np.abs(a - k) < 0.1, a + 0.25, a)
    return a


@pytest.mark.parametrize("name,op,ref,bounds,kinks", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data(), shape=small_shapes)
def test_unary(name, op, ref, bounds, kinks, data, shape):
    a = _away(data.draw(arrays(shape, *bounds)), kinks)
    x = leaf(a)
    np.testing.assert_allclose(op(x).numpy(), ref(a), rtol=1e-10, atol=1e-12)
    gradcheck(op, [x])


def test_activation_edges_follow_pytorch():
    x = minitl.tensor([-3.0, 3.0, -1.0, 1.0, 0.0, 6.0], requires_grad=True)
    F.hardswish(x).sum().backward()
    assert x.grad.numpy()[:2].tolist() == [0.0, 1.0]  # PyTorch: 0 at -3, 1 at 3
    x.grad = None
    F.relu6(x).sum().backward()
    assert x.grad.numpy()[4:].tolist() == [0.0, 0.0]  # hardtanh's gradient is 0 at the bounds
    big = minitl.tensor([-1000.0, 1000.0, float("nan")])
    assert F.softplus(big).numpy()[:2].tolist() == [0.0, 1000.0] and np.isnan(F.softplus(big).numpy()[2])
    assert np.isfinite(F.logsigmoid(big).numpy()[:2]).all() and np.isnan(F.gelu(big).numpy()[2])


@pytest.mark.parametrize("cls,arg", [(minitl.nn.LeakyReLU, 0.1), (minitl.nn.GELU, "tanh"), (minitl.nn.ELU, 0.5),
                                     (minitl.nn.Softplus, 2.0), (minitl.nn.Hardtanh, -0.5)])
def test_activation_modules_match_functions(cls, arg):
    x = minitl.tensor(np.linspace(-3, 3, 13))
    fn = {"LeakyReLU": lambda t: F.leaky_relu(t, 0.1), "GELU": lambda t: F.gelu(t, approximate="tanh"),
          "ELU": lambda t: F.elu(t, 0.5), "Softplus": lambda t: F.softplus(t, 2.0),
          "Hardtanh": lambda t: F.hardtanh(t, -0.5)}[cls.__name__]
    np.testing.assert_array_equal(cls(arg)(x).numpy(), fn(x).numpy())
    for name in ("SiLU", "Mish", "SELU", "CELU", "Softsign", "ReLU6", "Hardsigmoid", "Hardswish", "LogSigmoid"):
        assert getattr(minitl.nn, name)()(x).shape == x.shape


BINARY = [
    ("maximum", minitl.maximum, np.maximum),
    ("minimum", minitl.minimum, np.minimum),
    ("lerp", lambda a, b: minitl.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a)),
    ("clamp_tensor", lambda a, b: a.clamp(min=b), lambda a, b: np.maximum(a, b)),
]


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@given(data=st.data(), shapes=broadcastable_pair())
def test_binary(name, op, ref, data, shapes):
    a = data.draw(arrays(shapes[0]))
    b = data.draw(arrays(shapes[1]))
    x, y = leaf(a), leaf(b)
    np.testing.assert_allclose(op(x, y).numpy(), ref(a, b), rtol=1e-12)
    if np.min(np.abs(np.subtract(*np.broadcast_arrays(a, b))), initial=1) > 0.05:
        gradcheck(op, [x, y])


def test_clamp_tensor_bounds_follow_pytorch_gradients():
    x = minitl.tensor([0.0, 2.0, 5.0], requires_grad=True)
    lo = minitl.tensor([1.0, 1.0, 1.0], requires_grad=True)
    hi = minitl.tensor([3.0, 3.0, 0.5], requires_grad=True)  # the last has lo > hi: the result is hi
    out = x.clamp(lo, hi)
    assert out.numpy().tolist() == [1.0, 2.0, 0.5]
    out.sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 1.0, 0.0]
    assert lo.grad.numpy().tolist() == [1.0, 0.0, 0.0] and hi.grad.numpy().tolist() == [0.0, 0.0, 1.0]


def test_no_gradient_elementwise_and_tests():
    a = np.array([-1.5, -0.5, 0.5, 1.5, 2.5, np.nan, np.inf])
    x = minitl.tensor(a)
    for name, ref in [("floor", np.floor), ("ceil", np.ceil), ("round", np.round), ("trunc", np.trunc),
                      ("sign", np.sign), ("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)]:
        np.testing.assert_array_equal(getattr(x, name)().numpy(), ref(a.astype(np.float32)))
    assert x.round().numpy()[:5].tolist() == [-2.0, -0.0, 0.0, 2.0, 2.0]  # half to even, as PyTorch
    y = minitl.tensor([1.0, 2.0])
    assert minitl.isclose(y, y + 1e-9).numpy().tolist() == [True, True]
    assert minitl.allclose(y, minitl.tensor([1.0, 2.1]), atol=0.2) and not minitl.allclose(y, y * 2)
    assert minitl.isclose(minitl.tensor([np.nan]), minitl.tensor([np.nan]), equal_nan=True).item()


# ------------------------------------------------------------ shapes
@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), dim=st.integers(-3, 2),
       n=st.integers(1, 3))
def test_cat_and_stack(data, shape, dim, n):
    dim = dim % len(shape)
    parts = []
    for i in range(n):
        s = list(shape)
        s[dim] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(tuple(s))))
    xs = [leaf(p) for p in parts]
    np.testing.assert_array_equal(minitl.cat(xs, dim=dim).numpy(), np.concatenate(parts, dim))
    gradcheck(lambda *t: minitl.cat(list(t), dim) * np.arange(1.0, 1 + np.concatenate(parts, dim).size).reshape(
        np.concatenate(parts, dim).shape), xs)
    same = [leaf(data.draw(arrays(shape))) for _ in range(n)]
    np.testing.assert_array_equal(minitl.stack(same, dim).numpy(), np.stack([s.data for s in same], dim))
    gradcheck(lambda *t: minitl.stack(list(t), dim).sin(), same)


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), size=st.integers(1, 4))
def test_split_chunk_narrow_unbind(data, shape, size):
    a = data.draw(arrays(shape))
    x = leaf(a)
    pieces = x.split(size, dim=0)
    want = [a[i:i + size] for i in range(0, shape[0], size)]
    assert len(pieces) == len(want) and all(np.array_equal(p.numpy(), w) for p, w in zip(pieces, want))
    chunks = x.chunk(size, 0)
    step = -(-shape[0] // size)
    assert [c.shape[0] for c in chunks] == [len(range(i, min(i + step, shape[0]))) for i in range(0, shape[0], step)]
    gradcheck(lambda t: minitl.cat([p * (i + 1) for i, p in enumerate(t.split(size))]), [x])
    gradcheck(lambda t: t.narrow(0, shape[0] - 1, 1).exp(), [x])
    gradcheck(lambda t: minitl.stack(t.unbind(0)[::-1]), [x])
    assert [p.shape[0] for p in x.split([shape[0] - 1, 1])] == [shape[0] - 1, 1]


@given(data=st.data(), shape=small_shapes)
def test_squeeze_unsqueeze_unflatten_movedim(data, shape):
    a = data.draw(arrays(shape))
    x = leaf(a)
    assert x.unsqueeze(0).shape == (1,) + shape and x.unsqueeze(-1).shape == shape + (1,)
    assert x.unsqueeze(0).squeeze(0).shape == shape
    assert x.squeeze().shape == tuple(n for n in shape if n != 1)
    gradcheck(lambda t: t.unsqueeze(-1).squeeze().sin(), [x])
    if shape:
        u = x.unflatten(0, (1, shape[0], 1))
        assert u.shape == (1, shape[0], 1) + shape[1:]
        np.testing.assert_array_equal(x.movedim(0, -1).numpy(), np.moveaxis(a, 0, -1))
        gradcheck(lambda t: t.movedim(0, -1).cos(), [x])


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3),
       reps=st.lists(st.integers(1, 3), min_size=3, max_size=4))
def test_expand_repeat(data, shape, reps):
    a = data.draw(arrays(shape))
    x = leaf(a)
    np.testing.assert_array_equal(x.repeat(*reps).numpy(), np.tile(a, reps))
    gradcheck(lambda t: t.repeat(reps) * np.arange(np.tile(a, reps).size).reshape(np.tile(a, reps).shape), [x])
    target = tuple(r if i >= len(reps) - len(shape) and shape[i - len(reps) + len(shape)] == 1 else
                   (shape[i - len(reps) + len(shape)] if i >= len(reps) - len(shape) else r) for i, r in enumerate(reps))
    np.testing.assert_array_equal(x.expand(*target).numpy(), np.broadcast_to(a, target))
    gradcheck(lambda t: t.expand(target) * np.arange(int(np.prod(target))).reshape(target), [x])


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=4), k=st.integers(-2, 2),
       shift=st.integers(-5, 5))
def test_flip_roll_tril_triu(data, shape, k, shift):
    a = data.draw(arrays(shape))
    x = leaf(a)
    w = np.arange(a.size).reshape(shape)
    np.testing.assert_array_equal(x.flip(0).numpy(), np.flip(a, 0))
    np.testing.assert_array_equal(x.flip((0, -1)).numpy(), np.flip(a, (0, -1)))
    np.testing.assert_array_equal(x.roll(shift, 1).numpy(), np.roll(a, shift, 1))
    np.testing.assert_array_equal(x.roll(shift).numpy(), np.roll(a, shift))
    np.testing.assert_array_equal(x.tril(k).numpy(), np.tril(a, k))
    np.testing.assert_array_equal(x.triu(k).numpy(), np.triu(a, k))
    for f in (lambda t: t.flip(-1), lambda t: t.roll((shift, 1), (0, 1)), lambda t: t.tril(k), lambda t: t.triu(k)):
        gradcheck(lambda t: f(t) * w, [x])


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dim=st.integers(0, 2))
def test_gather_scatter_index_select(data, shape, dim):
    dim = dim % len(shape)
    a = data.draw(arrays(shape))
    x = leaf(a)
    ishape = tuple(data.draw(st.integers(1, n)) for n in shape)
    idx = np.random.default_rng(0).integers(0, shape[dim], size=ishape)
    got = x.gather(dim, minitl.tensor(idx))
    np.testing.assert_array_equal(got.numpy(), np.take_along_axis(a[tuple(slice(0, n) if i != dim else slice(None)
                                                                          for i, n in enumerate(ishape))], idx, dim))
    gradcheck(lambda t: t.gather(dim, minitl.tensor(idx)).exp(), [x])
    src = leaf(data.draw(arrays(ishape)))
    added = x.scatter_add(dim, minitl.tensor(idx), src)
    want = a.copy()
    grids = list(np.ogrid[tuple(slice(0, n) for n in ishape)])
    grids[dim] = idx
    np.add.at(want, tuple(grids), src.data)
    np.testing.assert_allclose(added.numpy(), want, rtol=1e-12)
    gradcheck(lambda t, s: t.scatter_add(dim, minitl.tensor(idx), s).sin(), [x, src])
    if ishape[dim] == 1:  # one source per target line: scatter (no accumulation) has no collisions
        gradcheck(lambda t, s: t.scatter(dim, minitl.tensor(idx), s).sin(), [x, src])
    sel = np.array([shape[dim] - 1, 0, shape[dim] - 1])
    np.testing.assert_array_equal(x.index_select(dim, minitl.tensor(sel)).numpy(), np.take(a, sel, dim))
    gradcheck(lambda t: t.index_select(dim, minitl.tensor(sel)).cos(), [x])


def test_scatter_writes_and_value_form():
    x = minitl.zeros(2, 4)
    out = x.scatter(1, minitl.tensor([[1], [3]]), value=7.0)
    assert out.numpy().tolist() == [[0, 7, 0, 0], [0, 0, 0, 7]]
    src = minitl.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.scatter(0, minitl.tensor([[1, 0]]), src).numpy().tolist() == [[0, 2, 0, 0], [1, 0, 0, 0]]


@settings(max_examples=12)
@given(data=st.data(), shapes=broadcastable_pair())
def test_where_and_masked_fill(data, shapes):
    sa, sb = shapes
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    x, y = leaf(a), leaf(b)
    cond = np.broadcast_to(a, np.broadcast_shapes(sa, sb)) > 0 if sa else np.asarray(a > 0)
    c = minitl.tensor(cond)
    np.testing.assert_array_equal(minitl.where(c, x, y).numpy(), np.where(cond, a, b))
    np.testing.assert_array_equal(minitl.where(c, x, 0.5).numpy(), np.where(cond, a, 0.5))
    gradcheck(lambda s, t: minitl.where(c, s, t).sin(), [x, y])
    mask = minitl.tensor(a > 0.5)
    np.testing.assert_array_equal(x.masked_fill(mask, -1.0).numpy(), np.where(a > 0.5, -1.0, a))
    gradcheck(lambda s: s.masked_fill(mask, 2.0).exp(), [x])


PAD_CASES = [((1, 2), "constant"), ((2, 0, 1, 1), "reflect"), ((0, 3, 2, 1), "replicate"), ((-1, 2), "constant"),
             ((1, -1, -1, 0), "replicate"), ((1, 1), "circular")]


@pytest.mark.parametrize("widths,mode", PAD_CASES)
def test_pad_modes_forward_and_backward(widths, mode):
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = leaf(a)
    np_widths = [(0, 0)] * 3
    for i in range(len(widths) // 2):
        np_widths[2 - i] = (widths[2 * i], widths[2 * i + 1])
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(np_widths, a.shape))
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in np_widths]
    kw = {"mode": {"replicate": "edge", "circular": "wrap"}.get(mode, mode)}
    if mode == "constant":
        kw["constant_values"] = 0.5
    want = np.pad(a[crop], grow, **kw)
    got = F.pad(x, widths, mode=mode, value=0.5 if mode == "constant" else None)
    np.testing.assert_array_equal(got.numpy(), want)
    gradcheck(lambda t: F.pad(t, widths, mode=mode) * np.arange(want.size).reshape(want.shape), [x])


def test_pad_and_one_hot_errors_and_values():
    x = minitl.zeros(1, 3)
    with pytest.raises(ValueError, match="reflect"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="even"):
        F.pad(x, (1,))
    oh = F.one_hot(minitl.tensor([0, 2, 1]))
    assert oh.dtype == np.int64 and oh.numpy().tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert F.one_hot(minitl.tensor([[1]]), num_classes=4).shape == (1, 1, 4)
    with pytest.raises(ValueError, match="out of range"):
        F.one_hot(minitl.tensor([3]), num_classes=3)


# ------------------------------------------------------------ reductions
@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dim=st.integers(-3, 2),
       keep=st.booleans(), correction=st.integers(0, 1))
def test_var_std_logsumexp_norm_prod(data, shape, dim, keep, correction):
    dim = dim % len(shape)
    a = data.draw(arrays(shape, 0.3, 3.0))
    x = leaf(a)
    if shape[dim] > correction:
        np.testing.assert_allclose(x.var(dim, correction=correction, keepdim=keep).numpy(),
                                   a.var(dim, ddof=correction, keepdims=keep), rtol=1e-10)
        np.testing.assert_allclose(x.std(dim=dim, unbiased=bool(correction), keepdim=keep).numpy(),
                                   a.std(dim, ddof=correction, keepdims=keep), rtol=1e-10)
        if shape[dim] > 1:
            gradcheck(lambda t: t.std(dim, keepdim=keep, correction=correction), [x])
            gradcheck(lambda t: t.var(dim, keepdim=keep, correction=correction), [x])
    lse = np.log(np.exp(a).sum(dim, keepdims=keep))
    np.testing.assert_allclose(x.logsumexp(dim, keepdim=keep).numpy(), lse, rtol=1e-12)
    gradcheck(lambda t: t.logsumexp(dim, keep), [x])
    np.testing.assert_allclose(x.norm(dim=dim).numpy(), np.sqrt((a * a).sum(dim)), rtol=1e-12)
    np.testing.assert_allclose(x.norm(p=1).numpy(), np.abs(a).sum(), rtol=1e-12)
    np.testing.assert_allclose(x.norm(p=3, dim=dim).numpy(), (np.abs(a) ** 3).sum(dim) ** (1 / 3), rtol=1e-12)
    gradcheck(lambda t: t.norm(dim=dim), [x])
    gradcheck(lambda t: t.norm(p=3, dim=dim), [x])
    b = a.copy()
    b.flat[0] = 0.0  # a zero: prod's gradient must not be 0/0
    z = leaf(b)
    np.testing.assert_allclose(z.prod(dim, keepdim=keep).numpy(), b.prod(dim, keepdims=keep), rtol=1e-12)
    gradcheck(lambda t: t.prod(dim, keepdim=keep), [z])
    gradcheck(lambda t: t.prod(), [z])


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dim=st.integers(-3, 2))
def test_cumsum_cumprod_with_zeros(data, shape, dim):
    dim = dim % len(shape)
    a = data.draw(arrays(shape))
    x = leaf(a)
    np.testing.assert_allclose(x.cumsum(dim).numpy(), np.cumsum(a, dim), rtol=1e-12)
    gradcheck(lambda t: t.cumsum(dim), [x])
    np.testing.assert_allclose(x.cumprod(dim).numpy(), np.cumprod(a, dim), rtol=1e-12)
    gradcheck(lambda t: t.cumprod(dim), [x])
    b = a.copy()
    b.flat[a.size // 2] = 0.0
    gradcheck(lambda t: t.cumprod(dim), [leaf(b)])


@settings(max_examples=12)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dim=st.integers(-3, 2))
def test_min_max_argmin_sort_topk(data, shape, dim):
    dim = dim % len(shape)
    a = data.draw(arrays(shape))  # continuous draws: no ties
    x = leaf(a)
    v, i = x.min(dim)
    np.testing.assert_array_equal(v.numpy(), a.min(dim))
    np.testing.assert_array_equal(i.numpy(), a.argmin(dim))
    np.testing.assert_array_equal(x.argmin(dim).numpy(), a.argmin(dim))
    assert x.argmin().item() == a.argmin() and x.argmax().item() == a.argmax()
    gradcheck(lambda t: t.max(dim).values, [x])
    gradcheck(lambda t: t.amin(dim), [x])
    s = x.sort(dim, descending=True)
    np.testing.assert_array_equal(s.values.numpy(), -np.sort(-a, dim))
    np.testing.assert_array_equal(x.argsort(dim).numpy(), np.argsort(a, dim))
    gradcheck(lambda t: t.sort(dim).values * np.arange(a.size).reshape(shape), [x])
    k = data.draw(st.integers(0, shape[dim]))
    top = x.topk(k, dim)
    np.testing.assert_array_equal(top.values.numpy(), np.take(-np.sort(-a, dim), range(k), dim))
    if k:
        gradcheck(lambda t: t.topk(k, dim, largest=False).values.exp(), [x])


def test_any_all_and_nan_in_reductions():
    b = minitl.tensor([[True, False], [False, False]])
    assert b.any().item() and not b.all().item()
    assert b.any(dim=1).numpy().tolist() == [True, False]
    n = minitl.tensor([1.0, float("nan"), 3.0])
    assert np.isnan(n.max().item()) and np.isnan(n.min().item()) and n.argmax().item() == 1
    assert np.isnan(n.max(0).values.item()) and np.isnan(n.std().item()) and np.isnan(n.logsumexp(0).item())
    assert np.isnan(n.sort(0, descending=True).values.numpy()[0])
    assert minitl.tensor([True, True]).sum().dtype == np.int64


# ------------------------------------------------------------ losses
def _logits(rng, n, c):
    return leaf(rng.standard_normal((n, c)))


def test_cross_entropy_options_match_hand_computed_answers():
    rng = np.random.default_rng(0)
    x = _logits(rng, 5, 4)
    logp = x.data - np.log(np.exp(x.data).sum(1, keepdims=True))
    y = np.array([0, 3, -100, 1, 3])
    w = np.array([0.5, 1.0, 2.0, 3.0])
    keep = y != -100
    ys = np.where(keep, y, 0)
    nll = -logp[np.arange(5), ys]
    want = (nll * w[ys] * keep).sum() / (w[ys] * keep).sum()
    got = F.cross_entropy(x, minitl.tensor(y), weight=minitl.tensor(w, dtype=np.float64))
    np.testing.assert_allclose(got.item(), want, rtol=1e-12)
    gradcheck(lambda t: F.cross_entropy(t, minitl.tensor(y), weight=minitl.tensor(w, dtype=np.float64)), [x])
    eps = 0.2  # label smoothing with weights, as PyTorch: (1-eps) nll_w + eps/C * sum_c w_c (-logp_c)
    smooth = -(logp * w).sum(1)
    want = ((1 - eps) * (nll * w[ys] * keep).sum() + eps / 4 * (smooth * keep).sum()) / (w[ys] * keep).sum()
    got = F.cross_entropy(x, y, weight=w, label_smoothing=eps)
    np.testing.assert_allclose(got.item(), want, rtol=1e-12)
    probs = rng.dirichlet(np.ones(4), size=5)
    want = -(probs * logp).sum(1).mean()
    np.testing.assert_allclose(F.cross_entropy(x, minitl.tensor(probs)).item(), want, rtol=1e-12)
    gradcheck(lambda t: F.cross_entropy(t, minitl.tensor(probs), reduction="sum"), [x])
    # (N, C, d) inputs: the class dim is 1
    x3 = leaf(rng.standard_normal((2, 3, 4)))
    y3 = rng.integers(0, 3, size=(2, 4))
    lp3 = x3.data - np.log(np.exp(x3.data).sum(1, keepdims=True))
    want3 = -np.take_along_axis(lp3, y3[:, None], 1)[:, 0]
    np.testing.assert_allclose(F.cross_entropy(x3, y3, reduction="none").numpy(), want3, rtol=1e-12)
    # the plain case still takes the fused kernel and agrees with the composition
    yy = rng.integers(0, 4, size=5)
    np.testing.assert_allclose(F.cross_entropy(x, yy).item(), F.cross_entropy(x, yy, weight=np.ones(4)).item(),
                               rtol=1e-12)
    assert minitl.nn.CrossEntropyLoss(ignore_index=3)(x, yy).shape == ()


def test_binary_and_regression_losses():
    rng = np.random.default_rng(1)
    z = leaf(rng.standard_normal((4, 3)))
    t = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    p = leaf(rng.uniform(0.05, 0.95, size=(4, 3)))
    want = -(t * np.log(p.data) + (1 - t) * np.log(1 - p.data)).mean()
    np.testing.assert_allclose(F.binary_cross_entropy(p, t).item(), want, rtol=1e-12)
    gradcheck(lambda q: F.binary_cross_entropy(q, t), [p])
    pw = np.array([1.0, 2.0, 0.5])
    s = 1 / (1 + np.exp(-z.data))
    want = -(pw * t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    got = F.binary_cross_entropy_with_logits(z, t, pos_weight=minitl.tensor(pw, dtype=np.float64))
    np.testing.assert_allclose(got.item(), want, rtol=1e-12)
    gradcheck(lambda q: F.binary_cross_entropy_with_logits(q, t, pos_weight=pw), [z])
    assert np.isfinite(F.binary_cross_entropy_with_logits(minitl.tensor([1000.0, -1000.0]), [0.0, 1.0]).item())
    assert F.binary_cross_entropy(minitl.tensor([0.0]), [1.0]).item() == 100.0  # log clamped at -100
    y = rng.standard_normal((4, 3)) * 2
    d = z.data - y
    np.testing.assert_allclose(F.l1_loss(z, y).item(), np.abs(d).mean(), rtol=1e-12)
    sl1 = np.where(np.abs(d) < 0.5, 0.5 * d * d / 0.5, np.abs(d) - 0.25).mean()
    np.testing.assert_allclose(F.smooth_l1_loss(z, y, beta=0.5).item(), sl1, rtol=1e-12)
    hub = np.where(np.abs(d) <= 0.5, 0.5 * d * d, 0.5 * (np.abs(d) - 0.25)).sum()
    np.testing.assert_allclose(F.huber_loss(z, y, reduction="sum", delta=0.5).item(), hub, rtol=1e-12)
    for f in (lambda q: F.l1_loss(q, y), lambda q: F.smooth_l1_loss(q, y, beta=0.5),
              lambda q: F.huber_loss(q, y, delta=0.5)):
        gradcheck(f, [z])
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(minitl.tensor([1.5]), [1.0])


def test_kl_div_cosine_similarity_normalize():
    rng = np.random.default_rng(2)
    logq = leaf(np.log(rng.dirichlet(np.ones(3), size=4)))
    p = rng.dirichlet(np.ones(3), size=4)
    p[0, 0] = 0.0
    want = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - logq.data), 0).sum() / 4
    np.testing.assert_allclose(F.kl_div(logq, p, reduction="batchmean").item(), want, rtol=1e-12)
    gradcheck(lambda q: F.kl_div(q, p, reduction="batchmean"), [logq])
    a, b = leaf(rng.standard_normal((4, 3))), leaf(rng.standard_normal((4, 3)))
    cos = (a.data * b.data).sum(1) / np.linalg.norm(a.data, axis=1) / np.linalg.norm(b.data, axis=1)
    np.testing.assert_allclose(F.cosine_similarity(a, b).numpy(), cos, rtol=1e-12)
    gradcheck(lambda s, t: F.cosine_similarity(s, t), [a, b])
    np.testing.assert_allclose(F.normalize(a, dim=1).numpy(), a.data / np.linalg.norm(a.data, axis=1, keepdims=True),
                               rtol=1e-12)
    gradcheck(lambda s: F.normalize(s, dim=0), [a])
    assert np.isfinite(F.normalize(minitl.zeros(2, 3)).numpy()).all()
    assert minitl.nn.L1Loss()(a, b).shape == () and minitl.nn.BCEWithLogitsLoss()(a, (b.data > 0) * 1.0).shape == ()


# ------------------------------------------------------------ the same on CuPy
@pytest.mark.gpu
def test_everyday_ops_on_cupy_match_the_cpu():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    cpu = minitl.tensor(a, requires_grad=True)
    gpu = minitl.tensor(a, device="cuda", requires_grad=True)

    def chain(t):
        parts = t.split(2, dim=1)
        y = minitl.cat([F.gelu(parts[0]), F.silu(parts[1]).flip(0)], dim=1)
        y = minitl.where(y > 0, y, y * 0.1).unsqueeze(0).expand(2, 3, 4)
        y = y.roll(1, 2).tril() + t.std(dim=0, keepdim=True) + t.logsumexp(1, keepdim=True)
        y = y.gather(2, minitl.tensor(np.zeros((2, 3, 1), np.int64), device=t.device)).squeeze(-1)
        return y.cumsum(1).sum() + t.max(1).values.sum() + t.norm() + t.sort(1).values[:, 0].sum() \
            + F.pad(t, (1, 1), mode="reflect").sum() + t[0, :, [0, 1]].sum() + t.erf().sum()

    out_c, out_g = chain(cpu), chain(gpu)
    np.testing.assert_allclose(out_g.numpy(), out_c.numpy(), rtol=1e-5)
    out_c.backward()
    out_g.backward()
    np.testing.assert_allclose(gpu.grad.numpy(), cpu.grad.numpy(), rtol=1e-4, atol=1e-5)
    y = minitl.tensor([0, 2, 1], device="cuda")
    logits = minitl.tensor(a[:, :3], device="cuda")
    np.testing.assert_allclose(F.cross_entropy(logits, y, weight=minitl.tensor([1.0, 2.0, 3.0], device="cuda")).item(),
                               F.cross_entropy(minitl.tensor(a[:, :3]), [0, 2, 1], weight=[1.0, 2.0, 3.0]).item(),
                               rtol=1e-5)
