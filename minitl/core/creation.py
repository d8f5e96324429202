"""Tensor factories with PyTorch's names and defaults: ``arange``, ``full``, ``eye``, ``rand``, ``*_like`` ...

None of them builds a graph, so they live in the core. Defaults follow
PyTorch: floats are float32, integers int64, ``full`` infers its dtype from
the fill value, random draws come from minitl's one generator.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import random as _random
from .tensor import DEFAULT_FLOAT, Tensor


def _shape(shape, name) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"{name}: sizes must be non-negative integers, got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def _make(array, dtype, device, requires_grad) -> Tensor:
    if dtype is not None:
        array = array.astype(np.dtype(dtype), copy=False)
    return Tensor(array, requires_grad=requires_grad, device=device)


def zeros(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of zeros (float32 by default)."""
    return _make(np.zeros(_shape(size, "zeros"), dtype=dtype or DEFAULT_FLOAT), None, device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ones (float32 by default)."""
    return _make(np.ones(_shape(size, "ones"), dtype=dtype or DEFAULT_FLOAT), None, device, requires_grad)


def empty(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of the given shape; minitl fills it with zeros so nothing is ever uninitialised."""
    return _make(np.zeros(_shape(size, "empty"), dtype=dtype or DEFAULT_FLOAT), None, device, requires_grad)


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return np.bool_
    if isinstance(value, numbers.Integral):
        return np.int64
    if isinstance(value, numbers.Real):
        return DEFAULT_FLOAT
    raise TypeError(f"full: fill_value must be a number or bool, got {type(value).__name__}")


def full(size, fill_value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor filled with ``fill_value``; the dtype follows the value (bool, int64, float32)."""
    shape = _shape((size,) if not isinstance(size, (tuple, list)) else (tuple(size),), "full")
    dtype = dtype or _fill_dtype(fill_value)
    return _make(np.full(shape, fill_value, dtype=dtype), None, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Values from ``start`` to ``end`` (excluded) by ``step``; int64 when all three are integers."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: end {end} cannot be reached from start {start} with step {step}")
    ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    if dtype is None:
        dtype = np.int64 if ints else DEFAULT_FLOAT
    # Compute in float64 then cast, so a float32 range has the right length and values.
    count = int(np.ceil((end - start) / step))
    values = start + step * np.arange(count, dtype=np.int64 if ints else np.float64)
    return _make(values, dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` (both included)."""
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return _make(np.linspace(start, end, int(steps)), dtype or DEFAULT_FLOAT, device, requires_grad)


def eye(n, m=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    m = n if m is None else m
    _shape((n, m), "eye")
    return _make(np.eye(n, m, dtype=dtype or DEFAULT_FLOAT), None, device, requires_grad)


def rand(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from minitl's generator."""
    data = _random.generator().random(_shape(size, "rand"))
    return _make(data, dtype or DEFAULT_FLOAT, device, requires_grad)


def randn(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Standard-normal samples from minitl's generator."""
    data = _random.generator().standard_normal(_shape(size, "randn"))
    return _make(data, dtype or DEFAULT_FLOAT, device, requires_grad)


def randint(low, high=None, size=None, dtype=None, device="cpu") -> Tensor:
    """Integers uniform in [low, high) (``randint(high, size)`` means low = 0); int64 by default."""
    if size is None:  # randint(high, size)
        if high is None:
            raise TypeError("randint: needs high and size, e.g. randint(10, (3,))")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    data = _random.generator().integers(low, high, size=_shape((tuple(size),), "randint"))
    return _make(data, dtype or np.int64, device, False)


def _like(t: Tensor, dtype):
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a Tensor, got {type(t).__name__}")
    return t.shape, (dtype or t.dtype), t.device


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Zeros of ``t``'s shape, dtype and device."""
    shape, dtype, device = _like(t, dtype)
    return _make(np.zeros(shape, dtype=dtype), None, device, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Ones of ``t``'s shape, dtype and device."""
    shape, dtype, device = _like(t, dtype)
    return _make(np.ones(shape, dtype=dtype), None, device, requires_grad)


def empty_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Zeros of ``t``'s shape (see :func:`empty`)."""
    return zeros_like(t, dtype, requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """``fill_value`` in ``t``'s shape, dtype and device."""
    shape, dtype, device = _like(t, dtype)
    return _make(np.full(shape, fill_value, dtype=dtype), None, device, requires_grad)


def rand_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples in ``t``'s shape (a float dtype)."""
    shape, dtype, device = _like(t, dtype)
    return rand(shape, dtype=dtype if np.dtype(dtype).kind == "f" else None, device=device,
                requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """Standard-normal samples in ``t``'s shape (a float dtype)."""
    shape, dtype, device = _like(t, dtype)
    return randn(shape, dtype=dtype if np.dtype(dtype).kind == "f" else None, device=device,
                 requires_grad=requires_grad)
