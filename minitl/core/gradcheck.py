"""Numerical gradient checks in float64 (central differences).

``mode='full'`` compares the whole Jacobian (one backward per output element,
two forwards per input element): exact, for small inputs. ``mode='direction'``
compares one random projection vᵀ J u per input: cheap, for larger ones
(Chainer's ``check_backward``). A failure names the input and the worst element.
"""
from __future__ import annotations

import numpy as np

from .grad_mode import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytical and numerical gradients disagree."""


def _forward(fn, inputs):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out


def _numeric_jacobian(fn, inputs, i, eps):
    """(n_out, n_in) Jacobian of fn w.r.t. input i by central differences."""
    x = inputs[i]
    cols = []
    with no_grad():
        # Perturb through a multi-index, in place: x.data may be non-contiguous.
        for j in range(x.numel()):
            idx = np.unravel_index(j, x.shape)
            orig = x.data[idx].item()
            x.data[idx] = orig + eps
            plus = _forward(fn, inputs).numpy().astype(np.float64).ravel()
            x.data[idx] = orig - eps
            minus = _forward(fn, inputs).numpy().astype(np.float64).ravel()
            x.data[idx] = orig
            cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((_forward(fn, inputs).numel(), 0))


def _analytic_vjp(fn, inputs, v):
    """vᵀ J for every input, by one backward pass."""
    for x in inputs:
        x.grad = None
    out = _forward(fn, inputs)
    out.backward(Tensor(v.reshape(out.shape), dtype=out.dtype, device=out.device))
    return [np.zeros(x.shape) if x.grad is None else x.grad.numpy().astype(np.float64).ravel() for x in inputs]


def _fail(i, x, what, analytic, numeric, atol, rtol):
    err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    k = int(np.argmax(err))
    where = np.unravel_index(k, analytic.shape) if analytic.ndim else ()
    raise GradcheckError(
        f"gradcheck failed for input {i} (shape {x.shape}) in {what}: worst element {where}: "
        f"analytical {analytic.flat[k]:.8g} vs numerical {numeric.flat[k]:.8g} "
        f"(atol={atol}, rtol={rtol})"
    )


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              mode: str = "full", seed: int = 0) -> bool:
    """Check ``fn``'s backward against central differences; raises GradcheckError on mismatch.

    ``inputs`` are float64 Tensors; those with ``requires_grad`` are checked.
    """
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(x).__name__}, not a Tensor")
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; use float64 for numerical checks")
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires a gradient")
    rng = np.random.default_rng(seed)
    out_size = _forward(fn, inputs).numel()
    if mode == "full":
        rows = []
        for k in range(out_size):
            v = np.zeros(out_size)
            v[k] = 1.0
            rows.append(_analytic_vjp(fn, inputs, v))
        for i in checked:
            analytic = np.stack([r[i] for r in rows]) if rows else np.zeros((0, inputs[i].numel()))
            numeric = _numeric_jacobian(fn, inputs, i, eps)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                _fail(i, inputs[i], "the Jacobian", analytic, numeric, atol, rtol)
    elif mode == "direction":
        v = rng.standard_normal(out_size)
        vjp = _analytic_vjp(fn, inputs, v)
        for i in checked:
            x = inputs[i]
            u = rng.standard_normal(x.numel())
            analytic = np.array(vjp[i] @ u)
            orig = x.data.copy()
            with no_grad():
                x.data = orig + eps * u.reshape(x.shape)
                plus = _forward(fn, inputs).numpy().astype(np.float64).ravel() @ v
                x.data = orig - eps * u.reshape(x.shape)
                minus = _forward(fn, inputs).numpy().astype(np.float64).ravel() @ v
                x.data = orig
            numeric = np.array((plus - minus) / (2 * eps))
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                _fail(i, x, "the random direction vᵀJu", analytic, numeric, atol, rtol)
    else:
        raise ValueError(f"gradcheck mode must be 'full' or 'direction', got {mode!r}")
    for x in inputs:
        x.grad = None
    return True
