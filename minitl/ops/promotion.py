"""PyTorch's type promotion, where it differs from NumPy's.

- A Python scalar never widens a tensor within its category (bool < integer <
  float): ``float16_t * 2.0`` stays float16, ``int32_t + 1`` stays int32.
  It only lifts the category: ``int_t + 0.5`` is the default float (float32),
  ``bool_t + 1`` int64.
- A 0-d tensor acts like a scalar beside a tensor with dimensions.
- Between tensors of different categories the higher category's dtype wins
  (``int64_t + float32_t`` is float32, where NumPy says float64).
- True division and the float-only maths (``exp``, ``sin`` ...) of integer
  tensors give the default float.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..core import backend
from ..core.tensor import DEFAULT_FLOAT, Tensor
from .shape import AsType

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def category(dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats."""
    return _CATEGORY[np.dtype(dtype).kind]


def _scalar_category(v) -> int:
    if isinstance(v, (bool, np.bool_)):
        return 0
    if isinstance(v, numbers.Integral):
        return 1
    return 2


def _lift(cat: int):
    return {0: np.bool_, 1: np.int64, 2: DEFAULT_FLOAT}[cat]


def is_scalar(v) -> bool:
    """A Python (or NumPy) number that is not an array."""
    return isinstance(v, (numbers.Number, np.bool_)) and not isinstance(v, np.ndarray)


def result_dtype(a, b):
    """The dtype PyTorch gives ``a op b``; each is a Tensor or a Python scalar."""
    if is_scalar(a) and is_scalar(b):
        return np.dtype(_lift(max(_scalar_category(a), _scalar_category(b))))
    if is_scalar(a):
        a, b = b, a
    if is_scalar(b):
        ca, cb = category(a.dtype), _scalar_category(b)
        return a.dtype if cb <= ca else np.dtype(_lift(cb))
    ca, cb = category(a.dtype), category(b.dtype)
    if ca != cb:
        return a.dtype if ca > cb else b.dtype
    if a.ndim == 0 and b.ndim > 0:  # a 0-d tensor does not widen within a category
        return b.dtype
    if b.ndim == 0 and a.ndim > 0:
        return a.dtype
    return np.result_type(a.dtype, b.dtype)


def cast(t: Tensor, dtype) -> Tensor:
    """``t`` as ``dtype``: itself when it already is; differentiable between floats."""
    if t.dtype == dtype:
        return t
    if t.requires_grad and np.dtype(dtype).kind == "f":
        return AsType.apply(t, dtype=np.dtype(dtype))
    return Tensor._make(t.data.astype(dtype))


def as_tensor(v, like: Tensor, dtype=None) -> Tensor:
    """A non-Tensor operand on ``like``'s device (scalars in ``dtype``; lists of floats float32)."""
    if isinstance(v, Tensor):
        return v
    if is_scalar(v):
        return Tensor._make(backend.xp_for(like.device).asarray(v, dtype=dtype))
    try:
        return Tensor(v, device=like.device)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"expected a Tensor, number or array-like operand, got {type(v).__name__}: {exc}") from None


def promote(a, b, floating: bool = False):
    """``(a, b)`` as two Tensors of PyTorch's result dtype (the default float if ``floating``
    and the result would be integer); ``a`` or ``b`` may be a Python scalar."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(a, Tensor) and not is_scalar(a):
        a = as_tensor(a, like)
    if not isinstance(b, Tensor) and not is_scalar(b):
        b = as_tensor(b, like)
    dtype = result_dtype(a, b)
    if floating and dtype.kind != "f":
        dtype = np.dtype(DEFAULT_FLOAT)
    a, b = as_tensor(a, like, dtype), as_tensor(b, like, dtype)
    return cast(a, dtype), cast(b, dtype)


def floating(t: Tensor) -> Tensor:
    """``t`` itself if it is float, else ``t`` as the default float (``exp`` of an int tensor)."""
    return t if t.dtype.kind == "f" else Tensor._make(t.data.astype(DEFAULT_FLOAT))
