"""Graph semantics: accumulation, no_grad, retain_graph, deep chains, devices, errors."""
import numpy as np
import pytest

import minitl


def test_gradients_accumulate_until_zeroed():
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    x.zero_grad()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_shared_subexpression_sums_both_paths():
    x = minitl.tensor(2.0, requires_grad=True)
    y = x * x
    (y + y * x).backward()  # d/dx (x^2 + x^3) = 2x + 3x^2
    assert x.grad.item() == pytest.approx(16.0)


def test_no_grad_as_context_and_decorator():
    x = minitl.tensor([1.0], requires_grad=True)
    with minitl.no_grad():
        y = x * 2
    assert not y.requires_grad and y._fn is None

    @minitl.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad and minitl.is_grad_enabled()


def test_backward_needs_grad_for_non_scalar():
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(2,\)"):
        (x * 2).backward()
    (x * 2).backward(minitl.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(ValueError, match="grad has shape"):
        (x * 2).backward(minitl.tensor([1.0]))


def test_second_backward_needs_retain_graph():
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))))
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_chain_of_10000_ops():
    x = minitl.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 0.0001 * y
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-4)


def test_detach_and_requires_grad_():
    x = minitl.tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d._fn is None
    assert d.requires_grad_().requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        minitl.tensor([1, 2]).requires_grad_()


def test_tensor_basics():
    t = minitl.tensor([[1.0, 2.0]])
    assert t.dtype == np.float32 and t.shape == (1, 2) and t.device == "cpu"
    assert minitl.tensor(np.zeros(2)).dtype == np.float64
    assert minitl.tensor([1, 2]).dtype == np.int64
    assert minitl.tensor(3.5).item() == 3.5
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    assert isinstance((t > 1).numpy()[0, 1], np.bool_)
    assert (t * 2).dtype == np.float32  # Python scalars keep the dtype
    a = np.ones(3)
    assert minitl.tensor(a).data is not a  # tensor() copies


def test_device_errors_are_clear():
    with pytest.raises(ValueError, match="unknown device"):
        minitl.tensor([1.0], device="tpu")
    if not minitl.cuda.is_available():
        reason = minitl.cuda.why_unavailable()
        assert isinstance(reason, str) and "\n" not in reason and reason
        with pytest.raises(RuntimeError, match="'cuda' is unavailable"):
            minitl.tensor([1.0], device="cuda")


def test_mixing_devices_names_both():
    from minitl.ops.arithmetic import Add

    class FakeCuda(minitl.Tensor):
        @property
        def device(self):
            return "cuda"

    a = minitl.tensor([1.0])
    b = FakeCuda([1.0])
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        Add.apply(a, b)
