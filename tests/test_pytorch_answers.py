"""PyTorch's answers where minitl used to differ (issue 10's five wrong answers), and the
PyTorch spellings: size(), dim=/keepdim=, max(dim) -> (values, indices), dtype methods,
item assignment, creation functions, minitl.save/load. Expected values are derived by hand
from PyTorch's documented semantics (no framework is imported)."""
import warnings

import numpy as np
import pytest

import minitl
import minitl.nn.functional as F


# ------------------------------------------------------------ 1. Pow at 0
def test_pow_zero_exponent_gradient_is_zero_not_nan():
    x = minitl.tensor([0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw NumPy RuntimeWarning either
        (x ** 0.0).sum().backward()
    assert x.grad.numpy().tolist() == [0.0]


def test_pow_zero_base_exponent_gradient_follows_pytorch():
    base = minitl.tensor(0.0, requires_grad=True)
    q = minitl.tensor([0.5, 2.0, -0.3], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (base ** q).sum().backward()
    assert q.grad.numpy().tolist() == [0.0, 0.0, -np.inf]
    q2 = minitl.tensor([-1.0, 0.0, 1.0, 2.0], requires_grad=True)
    (0 ** q2).sum().backward()
    assert q2.grad.numpy().tolist() == [-np.inf, 0.0, 0.0, 0.0]


def test_pow_negative_base_keeps_nan_where_pytorch_has_it():
    b = minitl.tensor([-2.0], requires_grad=True)
    e = minitl.tensor([0.5], requires_grad=True)
    out = b ** e
    out.sum().backward()
    assert np.isnan(out.item()) and np.isnan(e.grad.item())


# ------------------------------------------------------------ 2. indexing
def test_integer_slice_list_index_is_pytorchs_not_numpys():
    a = np.arange(18.0).reshape(2, 3, 3)
    t = minitl.tensor(a)
    np.testing.assert_array_equal(t[0, :, [0, 1, 2]].numpy(), a[0])  # NumPy would give a[0].T
    b = np.arange(24.0).reshape(2, 3, 4)
    got = minitl.tensor(b)[1, :, [0, 2]]
    assert got.shape == (3, 2)
    np.testing.assert_array_equal(got.numpy(), b[1][:, [0, 2]])
    # with an ellipsis, and with the integer last
    np.testing.assert_array_equal(minitl.tensor(b)[[0, 1], ..., 1].numpy(), b[:, :, 1][[0, 1]])
    np.testing.assert_array_equal(minitl.tensor(b)[[1, 0], :, 0].numpy(), b[[1, 0], :, 0])


def test_pytorch_indexing_backward_scatters_into_place():
    b = np.arange(24.0).reshape(2, 3, 4)
    x = minitl.tensor(b, requires_grad=True)
    w = np.arange(6.0).reshape(3, 2)
    (x[1, :, [0, 0]] * minitl.tensor(w)).sum().backward()
    want = np.zeros_like(b)
    want[1, :, 0] = w[:, 0] + w[:, 1]  # the repeated index accumulates
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_boolean_and_tensor_indices():
    a = np.arange(12.0).reshape(3, 4)
    t = minitl.tensor(a)
    np.testing.assert_array_equal(t[t > 5].numpy(), a[a > 5])
    np.testing.assert_array_equal(t[minitl.tensor([2, 0])].numpy(), a[[2, 0]])
    np.testing.assert_array_equal(t[minitl.tensor(1)].numpy(), a[1])
    with pytest.raises(IndexError, match="shape"):
        t[5]


# ------------------------------------------------------------ 3. type promotion
def test_int_tensor_with_python_float_gives_float32():
    i = minitl.tensor([1, 2, 3])
    assert i.dtype == np.int64
    for out in (i / 2, i + 0.5, i.exp(), 0.7 ** i, i * 1.5, i - 0.5, minitl.sqrt(i)):
        assert out.dtype == np.float32, out
    np.testing.assert_allclose((i / 2).numpy(), [0.5, 1.0, 1.5])
    assert (i + 1).dtype == np.int64 and (i * 2).dtype == np.int64
    assert (i / minitl.tensor([2, 2, 2])).dtype == np.float32  # int / int: true division


def test_scalars_never_widen_float_tensors_and_tensors_follow_categories():
    h = minitl.tensor([1.0], dtype=np.float16)
    assert (h * 2.5).dtype == np.float16 and (h + 1).dtype == np.float16
    f = minitl.tensor([1.0, 2.0])
    i64 = minitl.tensor([1, 2])
    assert (f + i64).dtype == np.float32  # NumPy says float64
    assert (minitl.tensor([True, False]) + 1).dtype == np.int64
    assert (f + minitl.tensor(2.0, dtype=np.float64)).dtype == np.float32  # a 0-d tensor acts like a scalar
    assert (f + minitl.tensor([2.0, 1.0], dtype=np.float64)).dtype == np.float64


# ------------------------------------------------------------ 4. 0-d reductions
def test_zero_dim_reductions_over_dim_0_and_minus_1():
    t = minitl.tensor(3.0, requires_grad=True)
    assert t.sum(0).item() == 3.0 and t.sum(-1).item() == 3.0 and t.mean(0).item() == 3.0
    values, indices = t.max(0)
    assert values.item() == 3.0 and indices.item() == 0
    assert t.min(dim=-1).values.item() == 3.0
    t.sum(0).backward()
    assert t.grad.item() == 1.0
    with pytest.raises(IndexError):
        t.max(1)


# ------------------------------------------------------------ 5. clip(None, None)
def test_clamp_without_bounds_is_refused():
    x = minitl.tensor([1.0, 2.0])
    for call in (lambda: x.clip(None, None), lambda: x.clamp(), lambda: minitl.clamp(x)):
        with pytest.raises(ValueError, match="min and max"):
            call()


# ------------------------------------------------------------ spellings
def test_size_numel_dim_and_transposes():
    x = minitl.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(0) == 2 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3 and x.ndim == 3
    assert x.mT.shape == (2, 4, 3) and x.T.shape == (4, 3, 2)
    with pytest.raises(IndexError, match="dimension 3"):
        x.size(3)


def test_truth_value_and_python_numbers():
    assert not minitl.tensor([False]) and minitl.tensor(2.0) and float(minitl.tensor([2.5])) == 2.5
    assert int(minitl.tensor(3)) == 3
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(minitl.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="0-d"):
        len(minitl.tensor(1.0))


def test_max_min_with_dim_return_values_and_indices():
    a = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 0.0]])
    x = minitl.tensor(a, requires_grad=True)
    out = x.max(dim=1)
    assert out.values.numpy().tolist() == [5.0, 7.0] and out.indices.numpy().tolist() == [1, 0]
    values, indices = x.min(1, keepdim=True)
    assert values.shape == (2, 1) and indices.numpy().ravel().tolist() == [0, 2]
    out.values.sum().backward()  # max(dim) sends the gradient to the returned index only
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    assert x.max().item() == 7.0
    assert x.max(axis=1).numpy().tolist() == [5.0, 7.0]  # NumPy's spelling: the values (amax)
    np.testing.assert_array_equal(minitl.max(x, minitl.tensor(4.0)).numpy(), np.maximum(a, 4.0))


def test_dim_keepdim_spellings_everywhere():
    a = np.arange(6.0).reshape(2, 3)
    x = minitl.tensor(a)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert x.mean(axis=0, keepdims=True).shape == (1, 3)
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy(), np.exp(a) / np.exp(a).sum(0))
    np.testing.assert_allclose(F.log_softmax(x, dim=1).numpy(), a - np.log(np.exp(a).sum(1, keepdims=True)))
    assert x.cumsum(dim=1).numpy().tolist() == np.cumsum(a, 1).tolist()


def test_dtype_methods_and_new_tensors():
    x = minitl.tensor([1.5, -2.5])
    assert x.long().dtype == np.int64 and x.long().numpy().tolist() == [1, -2]
    assert x.int().dtype == np.int32 and x.bool().dtype == np.bool_ and x.double().dtype == np.float64
    assert x.to(np.float64).dtype == np.float64 and x.to("cpu", np.float16).dtype == np.float16
    assert x.type_as(minitl.tensor([1])).dtype == np.int64
    z = x.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32
    assert x.new_full((2,), 7).numpy().tolist() == [7.0, 7.0]
    assert x.new_ones((1,), dtype=np.int64).dtype == np.int64


def test_method_forms():
    x = minitl.tensor([[1.0, -2.0]])
    assert x.add(1, alpha=2).numpy().tolist() == [[3.0, 0.0]]
    assert x.mul(3).numpy().tolist() == [[3.0, -6.0]]
    assert x.pow(2).numpy().tolist() == [[1.0, 4.0]]
    assert x.abs().numpy().tolist() == [[1.0, 2.0]]
    assert x.clamp(min=0).numpy().tolist() == [[1.0, 0.0]]
    assert x.matmul(minitl.tensor([[1.0], [1.0]])).numpy().tolist() == [[-1.0]]


def test_item_assignment_only_without_gradient_tracking():
    x = minitl.zeros(2, 3, 3)
    x[0, :, [0, 1, 2]] = minitl.ones(3, 3)  # PyTorch's rule here too: writes x[0]
    assert x.numpy()[0].sum() == 9 and x.numpy()[1].sum() == 0
    x[1] = 5.0
    assert (x.numpy()[1] == 5).all()
    w = minitl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w[0] = 1.0
    with minitl.no_grad():
        w[0] = 1.0
    assert w.numpy().tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        x[0] = minitl.ones(4)


def test_creation_functions_follow_pytorch_defaults():
    assert minitl.arange(5).dtype == np.int64 and minitl.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert minitl.arange(0, 1, 0.25).numpy().tolist() == [0.0, 0.25, 0.5, 0.75]
    assert minitl.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert minitl.linspace(0, 1, 5).numpy().tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert minitl.full((2,), 3).dtype == np.int64 and minitl.full((2,), 3.0).dtype == np.float32
    assert minitl.full((1,), True).dtype == np.bool_
    np.testing.assert_array_equal(minitl.eye(2, 3).numpy(), np.eye(2, 3))
    assert minitl.empty(2, 2).shape == (2, 2)
    base = minitl.tensor([[1, 2]])
    assert minitl.zeros_like(base).dtype == np.int64 and minitl.ones_like(base).numpy().tolist() == [[1, 1]]
    assert minitl.full_like(base, 4).numpy().tolist() == [[4, 4]]
    minitl.manual_seed(0)
    r = minitl.rand(1000)
    assert r.dtype == np.float32 and 0 <= r.numpy().min() and r.numpy().max() < 1
    k = minitl.randint(3, 7, (500,))
    assert k.dtype == np.int64 and set(k.numpy().tolist()) == {3, 4, 5, 6}
    assert minitl.randn_like(minitl.zeros(4, 2)).shape == (4, 2)
    with pytest.raises(ValueError, match="arange"):
        minitl.arange(0, 5, -1)


def test_clone_is_in_the_graph():
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.data is not x.data
    (c * 3).sum().backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_and_load_state_dicts(tmp_path, suffix):
    m = minitl.nn.Linear(3, 2)
    path = tmp_path / f"w{suffix}"
    minitl.save(m.state_dict(), path)
    sd = minitl.load(path)
    assert all(isinstance(v, minitl.Tensor) for v in sd.values())
    m2 = minitl.nn.Linear(3, 2)
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.raises(ValueError, match="suffix"):
        minitl.save(m.state_dict(), tmp_path / "w.pt")


def test_errors_name_the_op_and_shapes():
    a, b = minitl.zeros(2, 3), minitl.zeros(4, 3)
    with pytest.raises(ValueError, match=r"cat: tensors must agree except in dim 1; got \(2, 3\) and \(4, 3\)"):
        minitl.cat([a, b], dim=1)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 3\)"):
        a + b
    with pytest.raises(ValueError, match="stack"):
        minitl.stack([a, b])
    with pytest.raises(IndexError, match="gather"):
        a.gather(1, minitl.tensor([[3, 0, 0]]))
    with pytest.raises(ValueError, match="expand"):
        a.expand(3, 3)
    with pytest.raises(TypeError, match="mean"):
        minitl.tensor([1, 2]).mean()
