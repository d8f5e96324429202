"""PyTorch's reductions on Tensors, with ``dim=``/``keepdim=`` (NumPy's ``axis=``/``keepdims=``
accepted too): sum, mean, max/min (``(values, indices)`` with a dim), amax/amin, argmax/argmin,
prod, var/std (``correction``/``unbiased``), logsumexp, any/all, cumsum/cumprod, norm,
sort/argsort/topk. The Functions are in reduce.py, scan.py and indexing.py.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from ..core.backend import get_array_module
from ..core.tensor import Tensor
from ._util import normalize_axis, normalize_dim
from .indexing import Gather
from .promotion import floating
from .reduce import LogSumExp, Max, Mean, Norm2, Prod, Sum, Var
from .scan import CumProd, CumSum
from .shape import Reshape

# PyTorch's torch.return_types: tuples whose fields are also named
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])


def pick_dims(dim, axis, keepdim, keepdims, op):
    """Merge PyTorch's (dim, keepdim) and NumPy's (axis, keepdims) spellings."""
    if dim is not None and axis is not None:
        raise TypeError(f"{op}: pass dim= or axis=, not both")
    if keepdim is not None and keepdims is not None:
        raise TypeError(f"{op}: pass keepdim= or keepdims=, not both")
    dim = axis if dim is None else dim
    if isinstance(dim, list):
        dim = tuple(dim)
    return dim, bool(keepdim if keepdim is not None else (keepdims or False))


def _axes(t, dim, op):
    try:
        return normalize_axis(dim, t.ndim)
    except ValueError:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of shape {t.shape}") from None


def sum(input: Tensor, dim=None, keepdim=None, dtype=None, axis=None, keepdims=None) -> Tensor:
    """Sum over ``dim`` (all dims by default); bool and integer tensors sum to int64, as PyTorch."""
    dim, keep = pick_dims(dim, axis, keepdim, keepdims, "sum")
    axes = _axes(input, dim, "sum")
    t = input
    if dtype is not None:
        t = t.astype(dtype)
    elif t.dtype.kind in "biu":
        t = Tensor._make(t.data.astype(np.int64))
    return Sum.apply(t, axis=axes, keepdims=keep)


def mean(input: Tensor, dim=None, keepdim=None, dtype=None, axis=None, keepdims=None) -> Tensor:
    """Mean over ``dim``; PyTorch refuses integer tensors (pass dtype=)."""
    dim, keep = pick_dims(dim, axis, keepdim, keepdims, "mean")
    axes = _axes(input, dim, "mean")
    t = input if dtype is None else input.astype(dtype)
    if t.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {t.dtype}; use .float() or dtype=")
    return Mean.apply(t, axis=axes, keepdims=keep)


def _arg(t, d, smallest):
    """argmax/argmin along one dim, with NaN counted as the extreme (as PyTorch)."""
    xp = get_array_module(t.data)
    a = t.data
    if a.dtype.kind == "f":
        nan = xp.isnan(a)
        if bool(nan.any()):
            return xp.argmax(nan, axis=d)  # first NaN wins where there is one
    return xp.argmin(a, axis=d) if smallest else xp.argmax(a, axis=d)


def _extreme(input, dim, keepdim, axis, keepdims, smallest, other=None):
    op = "min" if smallest else "max"
    if isinstance(dim, Tensor) or other is not None:  # max(a, b): element-wise
        from .math_functions import maximum, minimum

        return (minimum if smallest else maximum)(input, dim if other is None else other)
    numpy_spelling = axis is not None
    dim, keep = pick_dims(dim, axis, keepdim, keepdims, op)
    if dim is None or isinstance(dim, tuple) or numpy_spelling:
        return Max.apply(input, axis=_axes(input, dim, op), keepdims=keep, smallest=smallest)
    d = normalize_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return (MinResult if smallest else MaxResult)(Reshape.apply(input, shape=()), Tensor._make(
            get_array_module(input.data).zeros((), dtype=np.int64)))
    if input.shape[d] == 0:
        raise IndexError(f"{op}: cannot reduce the empty dim {d} of a tensor of shape {input.shape}")
    xp = get_array_module(input.data)
    idx = xp.expand_dims(_arg(input, d, smallest), d)
    values = Gather.apply(input, index=idx, dim=d)
    if not keep:
        values = Reshape.apply(values, shape=input.shape[:d] + input.shape[d + 1:])
        idx = idx.reshape(input.shape[:d] + input.shape[d + 1:])
    return (MinResult if smallest else MaxResult)(values, Tensor._make(idx.astype(np.int64)))


def max(input: Tensor, dim=None, keepdim=None, axis=None, keepdims=None, other=None):
    """The largest value; with an int ``dim`` the named tuple ``(values, indices)``, as PyTorch.

    With a tuple of dims (or ``axis=``) the values only (amax). ``max(a, b)`` is
    the element-wise maximum. Ties in ``max()`` share the gradient; ``max(dim)``
    sends it to the returned index.
    """
    return _extreme(input, dim, keepdim, axis, keepdims, False, other)


def min(input: Tensor, dim=None, keepdim=None, axis=None, keepdims=None, other=None):
    """The smallest value; see :func:`max`."""
    return _extreme(input, dim, keepdim, axis, keepdims, True, other)


def amax(input: Tensor, dim=None, keepdim=False) -> Tensor:
    """The largest values over ``dim`` (int or tuple; all by default); ties share the gradient."""
    return Max.apply(input, axis=_axes(input, dim, "amax"), keepdims=keepdim)


def amin(input: Tensor, dim=None, keepdim=False) -> Tensor:
    """The smallest values over ``dim``; ties share the gradient."""
    return Max.apply(input, axis=_axes(input, dim, "amin"), keepdims=keepdim, smallest=True)


def _argext(input, dim, keepdim, axis, smallest):
    op = "argmin" if smallest else "argmax"
    dim = dim if axis is None else axis
    xp = get_array_module(input.data)
    if dim is None:
        flat = Tensor._make(input.data.reshape(-1))
        if flat.shape[0] == 0:
            raise IndexError(f"{op}: the tensor is empty")
        out = _arg(flat, 0, smallest)
        return Tensor._make(xp.asarray(out, dtype=np.int64).reshape((1,) * input.ndim if keepdim else ()))
    d = normalize_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return Tensor._make(xp.zeros((), dtype=np.int64))
    out = _arg(input, d, smallest).astype(np.int64)
    return Tensor._make(xp.expand_dims(out, d) if keepdim else out)


def argmax(input: Tensor, dim=None, keepdim: bool = False, axis=None) -> Tensor:
    """Index of the largest value (of the flattened tensor without ``dim``); the first on ties."""
    return _argext(input, dim, keepdim, axis, False)


def argmin(input: Tensor, dim=None, keepdim: bool = False, axis=None) -> Tensor:
    """Index of the smallest value; the first on ties."""
    return _argext(input, dim, keepdim, axis, True)


def prod(input: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """The product over one ``dim`` (or all elements); right gradients with zeros too."""
    t = input if dtype is None else input.astype(dtype)
    if t.dtype.kind != "f":
        return Tensor._make(t.data.astype(np.int64).prod(axis=dim, keepdims=keepdim))
    if dim is None:
        return Prod.apply(t, axis=None, keepdims=keepdim)
    d = normalize_dim(dim, t.ndim, "prod")
    if t.ndim == 0:
        return Reshape.apply(t, shape=())
    return Prod.apply(t, axis=d, keepdims=keepdim)


def _correction(unbiased, correction, op):
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass unbiased= or correction=, not both")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(input: Tensor, dim=None, unbiased=None, keepdim=None, correction=None, axis=None, keepdims=None) -> Tensor:
    """Variance over ``dim`` with Bessel's correction by default (``correction=0`` or
    ``unbiased=False`` for the population variance)."""
    if isinstance(dim, bool):  # var(t, False): PyTorch's positional unbiased
        dim, unbiased = None, dim
    dim, keep = pick_dims(dim, axis, keepdim, keepdims, "var")
    return Var.apply(floating(input), axis=_axes(input, dim, "var"), correction=_correction(unbiased, correction, "var"),
                     keepdims=keep)


def std(input: Tensor, dim=None, unbiased=None, keepdim=None, correction=None, axis=None, keepdims=None) -> Tensor:
    """Standard deviation over ``dim`` (see :func:`var`), as one op so its gradient is exact."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    dim, keep = pick_dims(dim, axis, keepdim, keepdims, "std")
    return Var.apply(floating(input), axis=_axes(input, dim, "std"), correction=_correction(unbiased, correction, "std"),
                     keepdims=keep, root=True)


def logsumexp(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(input))) over ``dim``, computed without overflow."""
    return LogSumExp.apply(floating(input), axis=_axes(input, dim, "logsumexp"), keepdims=keepdim)


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where any element (over ``dim``) is non-zero."""
    return Tensor._make(get_array_module(input.data).asarray(
        input.data.astype(bool).any(axis=_axes(input, dim, "any"), keepdims=keepdim)))


def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element (over ``dim``) is non-zero."""
    return Tensor._make(get_array_module(input.data).asarray(
        input.data.astype(bool).all(axis=_axes(input, dim, "all"), keepdims=keepdim)))


def _scan(fn, input, dim, dtype, op):
    t = input if dtype is None else input.astype(dtype)
    if t.dtype.kind in "biu":
        t = Tensor._make(t.data.astype(np.int64))
    if t.ndim == 0:
        return Reshape.apply(t, shape=())
    d = normalize_dim(dim, t.ndim, op)
    if t.dtype.kind != "f":
        xp = get_array_module(t.data)
        return Tensor._make((xp.cumsum if fn is CumSum else xp.cumprod)(t.data, axis=d))
    return fn.apply(t, axis=d)


def cumsum(input: Tensor, dim: int, dtype=None) -> Tensor:
    """Running sum along ``dim``."""
    return _scan(CumSum, input, dim, dtype, "cumsum")


def cumprod(input: Tensor, dim: int, dtype=None) -> Tensor:
    """Running product along ``dim`` (exact gradients with zeros too)."""
    return _scan(CumProd, input, dim, dtype, "cumprod")


def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """The vector p-norm over ``dim`` (all elements by default): p = 2 ('fro'), 1, inf, -inf, 0, or any real."""
    t = floating(input)
    axes = _axes(t, dim, "norm")
    from .math_functions import abs as _abs

    if p in ("fro", 2, 2.0):
        return Norm2.apply(t, axis=axes, keepdims=keepdim)
    if p in (float("inf"), "inf"):
        return Max.apply(_abs(t), axis=axes, keepdims=keepdim)
    if p in (float("-inf"), "-inf"):
        return Max.apply(_abs(t), axis=axes, keepdims=keepdim, smallest=True)
    if p == 0:
        return Tensor._make((t.data != 0).sum(axis=axes, keepdims=keepdim).astype(t.dtype))
    if p == 1:
        return Sum.apply(_abs(t), axis=axes, keepdims=keepdim)
    if not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be a number, 'fro', inf or -inf, got {p!r}")
    return Sum.apply(_abs(t) ** float(p), axis=axes, keepdims=keepdim) ** (1.0 / p)


def _sort_indices(t, d, descending):
    xp = get_array_module(t.data)
    idx = xp.argsort(t.data, axis=d, kind="stable") if xp is np else xp.argsort(t.data, axis=d)
    # Descending = the ascending order reversed, so NaN (sorted last) comes first, as PyTorch.
    return xp.flip(idx, axis=d) if descending else idx


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` sorted along ``dim``; the values are differentiable."""
    if input.ndim == 0:
        return SortResult(Reshape.apply(input, shape=()), Tensor._make(np.zeros((), np.int64)))
    d = normalize_dim(dim, input.ndim, "sort")
    idx = _sort_indices(input, d, descending)
    return SortResult(Gather.apply(input, index=idx, dim=d), Tensor._make(idx.astype(np.int64)))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim``."""
    return sort(input, dim, descending, stable).indices


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """``(values, indices)`` of the ``k`` largest (or smallest) along ``dim``; values differentiable."""
    d = normalize_dim(dim, input.ndim, "topk")
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k = {k} is out of range for dim {d} of size {n} (shape {input.shape})")
    if input.ndim == 0:
        return TopkResult(Reshape.apply(input, shape=()), Tensor._make(np.zeros((), np.int64)))
    idx = _sort_indices(input, d, largest)[(builtins.slice(None),) * d + (builtins.slice(0, k),)]
    return TopkResult(Gather.apply(input, index=idx, dim=d), Tensor._make(idx.astype(np.int64)))
