"""Indexing with PyTorch's rule, and the ops that pick or place elements along a dim:
``t[index]``, gather, scatter / scatter_add, where (masked_fill), each forward beside backward.

PyTorch and NumPy disagree when integers and index arrays are separated by a
slice: ``a[0, :, [0, 1, 2]]``. NumPy counts the integer as an advanced index,
broadcasts it with the list and moves the result's dimension first (a
transposition). PyTorch applies the integer first, as a plain selection, and
the list, now alone, stays in place. :func:`torch_index` rewrites an index
into those two steps.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..core import backend
from ..core.backend import get_array_module
from ..core.function import Function
from ._util import along_dim_index, scatter_add_into, unbroadcast


def _is_int(k) -> bool:
    return isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, (bool, np.bool_))


def _is_array(k) -> bool:
    return isinstance(k, np.ndarray) or backend.is_cupy_array(k)


def _normalize_key(k, xp):
    """One index entry with Tensors and lists turned into arrays and 0-d integer arrays into ints."""
    data = getattr(k, "data", None)
    if data is not None and type(k).__name__ == "Tensor":
        k = data
    if isinstance(k, list):
        k = np.asarray(k)
        if k.dtype.kind not in "biu":
            raise IndexError(f"index lists must hold integers or booleans, got dtype {k.dtype}")
    if _is_array(k):
        if k.dtype.kind not in "biu":
            raise IndexError(f"index arrays must hold integers or booleans, got dtype {k.dtype}")
        if k.ndim == 0 and k.dtype.kind in "iu":
            return int(k)
        return xp.asarray(k)
    return k


def torch_index(key, ndim, xp=np):
    """``key`` as a list of index tuples to apply in turn with NumPy so the result is PyTorch's.

    One tuple when NumPy's and PyTorch's rules agree; two (the integers first)
    when integers are mixed with index arrays.
    """
    key = key if isinstance(key, tuple) else (key,)
    key = tuple(_normalize_key(k, xp) for k in key)
    if not (any(_is_array(k) for k in key) and any(_is_int(k) for k in key)):
        return [key]
    used = sum(k.ndim if _is_array(k) and k.dtype.kind == "b" else 1
               for k in key if k is not None and k is not Ellipsis)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    expanded = []
    for k in key:
        if k is Ellipsis:
            expanded.extend([slice(None)] * max(ndim - used, 0))
        else:
            expanded.append(k)
    first, second = [], []
    for k in expanded:
        if _is_int(k):
            first.append(k)
        elif k is None:
            second.append(k)
        else:
            width = k.ndim if _is_array(k) and k.dtype.kind == "b" else 1
            first.extend([slice(None)] * width)
            second.append(k)
    return [tuple(first), tuple(second)]


def _has_int_array(index) -> bool:
    return any(_is_array(k) and k.dtype.kind in "iu" for k in index)


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.index = a.shape, index
        try:
            return a[index]
        except IndexError as exc:
            raise IndexError(f"index {index!r} does not fit a tensor of shape {a.shape}: {exc}") from None

    @staticmethod
    def backward(ctx, g):
        # d a[i] = scatter of g into zeros; repeated integer indices accumulate.
        out = get_array_module(g).zeros(ctx.shape, dtype=g.dtype)
        if _has_int_array(ctx.index):
            return scatter_add_into(out, ctx.index, g)
        out[ctx.index] = g  # slices, integers and masks never repeat an element
        return out


def getitem(t, key):
    """``t[key]`` with PyTorch's indexing rule (see :func:`torch_index`)."""
    for index in torch_index(key, t.ndim, get_array_module(t.data)):
        t = GetItem.apply(t, index=index)
    return t


def setitem(t, key, value) -> None:
    """``t[key] = value`` in place, for a tensor that records no graph."""
    from ..core import grad_mode

    if t.requires_grad and grad_mode.is_grad_enabled():
        raise RuntimeError(
            f"cannot assign into a tensor that requires grad (shape {t.shape}) while grad mode is on: "
            "wrap the assignment in minitl.no_grad(), or assign into a tensor without requires_grad"
        )
    xp = get_array_module(t.data)
    v = value.data if type(value).__name__ == "Tensor" else value
    v = backend.to_device(v, t.device) if _is_array(v) else v
    steps = torch_index(key, t.ndim, xp)
    target = t.data
    for index in steps[:-1]:
        target = target[index]  # integer steps are views: writing into them writes into t
    try:
        target[steps[-1]] = v
    except (ValueError, IndexError) as exc:
        shape = getattr(v, "shape", ())
        raise ValueError(f"cannot assign a value of shape {tuple(shape)} into t[{key!r}] of a tensor of shape "
                         f"{t.shape}: {exc}") from None


class Gather(Function):
    @staticmethod
    def forward(ctx, a, index, dim):
        xp = get_array_module(a)
        ctx.shape, ctx.full = a.shape, along_dim_index(xp, index, dim)
        return a[ctx.full]

    @staticmethod
    def backward(ctx, g):
        # d gather = scatter_add of g at the gathered positions.
        out = get_array_module(g).zeros(ctx.shape, dtype=g.dtype)
        return scatter_add_into(out, ctx.full, g)


class Scatter(Function):
    """``out = a`` with ``src[i]`` written (or added, ``add=True``) at ``index[i]`` along ``dim``."""

    @staticmethod
    def forward(ctx, a, src, index, dim, add=False):
        xp = get_array_module(a)
        full = along_dim_index(xp, index, dim)
        part = src[tuple(slice(0, n) for n in index.shape)] if src.ndim else xp.broadcast_to(src, index.shape)
        out = a.copy()
        if add:
            scatter_add_into(out, full, part.astype(a.dtype, copy=False))
        else:
            out[full] = part
        ctx.full, ctx.add, ctx.src_shape = full, add, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        # d out/d a: 1 where a survives (everywhere for add); d out/d src: g gathered at index.
        xp = get_array_module(g)
        da = dsrc = None
        if ctx.needs_input_grad[0]:
            da = g if ctx.add else g.copy()
            if not ctx.add:
                da[ctx.full] = 0
        if ctx.needs_input_grad[1]:
            picked = g[ctx.full]
            if len(ctx.src_shape) == 0:
                dsrc = picked.sum().reshape(())
            else:
                dsrc = xp.zeros(ctx.src_shape, dtype=g.dtype)
                dsrc[tuple(slice(0, n) for n in picked.shape)] = picked
        return da, dsrc


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        xp = get_array_module(a, b)
        ctx.cond, ctx.shapes = cond, (a.shape, b.shape)
        return xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        # d where(c, a, b) = g where c for a, g where not c for b.
        xp = get_array_module(g)
        sa, sb = ctx.shapes
        zero = xp.zeros((), dtype=g.dtype)
        da = unbroadcast(xp.where(ctx.cond, g, zero), sa) if ctx.needs_input_grad[1] else None
        db = unbroadcast(xp.where(ctx.cond, zero, g), sb) if ctx.needs_input_grad[2] else None
        return None, da, db
