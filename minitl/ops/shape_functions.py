"""PyTorch's shape functions on Tensors: cat, stack, split, chunk, squeeze, unsqueeze, expand,
repeat, flip, roll, tril/triu, unflatten, movedim, gather, scatter, index_select, masked_fill,
where, narrow. Each checks its arguments (an error names the op and the shapes) and calls the
``Function`` of arrange.py, indexing.py or shape.py. ``minitl.cat`` and ``t.unsqueeze`` are these.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..core.tensor import Tensor
from ._util import normalize_dim
from .arrange import Cat, Expand, Flip, Repeat, Roll, Stack, Tri
from .indexing import Gather, GetItem, Scatter, Where
from .promotion import as_tensor, promote, result_dtype, cast
from .shape import Clone, Reshape, Transpose


def pick_dim(dim, axis, op, default=None):
    """PyTorch's ``dim=`` or NumPy's ``axis=`` (not both)."""
    if dim is not None and axis is not None:
        raise TypeError(f"{op}: pass dim= or axis=, not both")
    return default if dim is None and axis is None else (dim if dim is not None else axis)


def _sizes(args, op):
    """``f(2, 3)`` or ``f((2, 3))`` as a tuple of ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for a in args:
        if not isinstance(a, (numbers.Integral, np.integer)):
            raise TypeError(f"{op}: sizes must be integers, got {args}")
    return tuple(int(a) for a in args)


def _tensors(tensors, op):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    out = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    dtype = out[0].dtype
    for t in out[1:]:
        dtype = result_dtype(Tensor._make(np.zeros(1, dtype)), t)
    return [cast(t, dtype) for t in out]


def cat(tensors, dim: int = 0, axis=None) -> Tensor:
    """Join tensors along an existing dim; all other dims must agree."""
    dim = pick_dim(dim if axis is None else None, axis, "cat", 0)
    ts = _tensors(tensors, "cat")
    ts = [t for t in ts if not (t.ndim == 1 and t.shape[0] == 0)] or ts[:1]  # PyTorch skips 1-d empties
    ref = ts[0]
    if ref.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    d = normalize_dim(dim, ref.ndim, "cat")
    for t in ts[1:]:
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != d):
            raise ValueError(f"cat: tensors must agree except in dim {d}; got {ref.shape} and {t.shape}")
    return Cat.apply(*ts, dim=d)


def stack(tensors, dim: int = 0, axis=None) -> Tensor:
    """Join equal-shaped tensors along a new dim."""
    dim = pick_dim(dim if axis is None else None, axis, "stack", 0)
    ts = _tensors(tensors, "stack")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensors must have equal shapes; got {ts[0].shape} and {t.shape}")
    return Stack.apply(*ts, dim=normalize_dim(dim, ts[0].ndim + 1, "stack"))


def narrow(t: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The slice ``start:start+length`` of dim ``dim`` (a view's values, differentiable)."""
    d = normalize_dim(dim, t.ndim, "narrow")
    n = t.shape[d]
    if start < 0:
        start += n
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise ValueError(f"narrow: start {start} and length {length} do not fit dim {d} of size {n} "
                         f"(shape {t.shape})")
    return GetItem.apply(t, index=(slice(None),) * d + (slice(start, start + length),))


def split(t: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
    d = normalize_dim(dim, t.ndim, "split")
    n = t.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} must be non-negative and sum to {n} (dim {d} of shape {t.shape})")
    else:
        step = int(split_size_or_sections)
        if step <= 0 and n:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] if n else [0]
    out, start = [], 0
    for s in sizes:
        out.append(narrow(t, d, start, s))
        start += s
    return tuple(out)


def chunk(t: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most ``chunks`` pieces of equal size ceil(n / chunks) along ``dim``."""
    if int(chunks) < 1:
        raise ValueError(f"chunk: chunks must be at least 1, got {chunks}")
    n = t.shape[normalize_dim(dim, t.ndim, "chunk")]
    return split(t, max(-(-n // int(chunks)), 1), dim)


def unbind(t: Tensor, dim: int = 0) -> tuple:
    """The slices along ``dim``, each with that dim removed."""
    d = normalize_dim(dim, t.ndim, "unbind")
    return tuple(GetItem.apply(t, index=(slice(None),) * d + (i,)) for i in range(t.shape[d]))


def squeeze(t: Tensor, dim=None) -> Tensor:
    """Drop size-1 dims (all, or the given ones; a named dim of another size is kept, as PyTorch)."""
    if dim is None:
        dims = [i for i, n in enumerate(t.shape) if n == 1]
    else:
        dims = [normalize_dim(d, t.ndim, "squeeze") for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
        dims = [d for d in dims if t.ndim and t.shape[d] == 1]
    return Reshape.apply(t, shape=tuple(n for i, n in enumerate(t.shape) if i not in dims))


def unsqueeze(t: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim`` (-1 appends)."""
    d = normalize_dim(dim, t.ndim + 1, "unsqueeze")
    return Reshape.apply(t, shape=t.shape[:d] + (1,) + t.shape[d:])


def unflatten(t: Tensor, dim: int, sizes) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one may be -1)."""
    d = normalize_dim(dim, t.ndim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    known = int(np.prod([s for s in sizes if s != -1]))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != t.shape[d]) or (
            -1 in sizes and (known == 0 or t.shape[d] % known)):
        raise ValueError(f"unflatten: sizes {sizes} do not multiply to dim {d} of size {t.shape[d]} (shape {t.shape})")
    sizes = tuple(t.shape[d] // known if s == -1 else s for s in sizes)
    return Reshape.apply(t, shape=t.shape[:d] + sizes + t.shape[d + 1:])


def movedim(t: Tensor, source: int, destination: int) -> Tensor:
    """Move dim ``source`` to position ``destination``."""
    s, d = normalize_dim(source, t.ndim, "movedim"), normalize_dim(destination, t.ndim, "movedim")
    order = [i for i in range(t.ndim) if i != s]
    order.insert(d, s)
    return Transpose.apply(t, axes=tuple(order))


def expand(t: Tensor, *sizes) -> Tensor:
    """Broadcast size-1 dims to ``sizes`` (-1 keeps a dim); new dims are prepended."""
    sizes = _sizes(sizes, "expand")
    if len(sizes) < t.ndim:
        raise ValueError(f"expand: {sizes} has fewer dims than the tensor's shape {t.shape}")
    lead = len(sizes) - t.ndim
    shape = []
    for i, s in enumerate(sizes):
        own = t.shape[i - lead] if i >= lead else None
        if s == -1:
            if own is None:
                raise ValueError(f"expand: -1 is not allowed for the new leading dim {i} in {sizes}")
            s = own
        if own is not None and own != 1 and own != s:
            raise ValueError(f"expand: the size {own} of dim {i - lead} (shape {t.shape}) must be 1 to expand to {s}")
        shape.append(s)
    return Expand.apply(t, shape=tuple(shape))


def expand_as(t: Tensor, other: Tensor) -> Tensor:
    """``expand`` to ``other``'s shape."""
    return expand(t, other.shape)


def repeat(t: Tensor, *reps) -> Tensor:
    """Tile the tensor ``reps`` times along each dim (PyTorch's repeat; NumPy's tile)."""
    reps = _sizes(reps, "repeat")
    if len(reps) < t.ndim:
        raise ValueError(f"repeat: needs at least {t.ndim} repeat counts for shape {t.shape}, got {reps}")
    if min(reps, default=1) < 0:
        raise ValueError(f"repeat: counts must be non-negative, got {reps}")
    return Repeat.apply(t, reps=reps)


def flip(t: Tensor, dims) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return Flip.apply(t, dims=tuple(normalize_dim(d, t.ndim, "flip") for d in dims))


def roll(t: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements circularly; without ``dims`` the flattened tensor is rolled."""
    if dims is None:
        return Reshape.apply(Roll.apply(Reshape.apply(t, shape=(-1,)), shifts=int(shifts), dims=0), shape=t.shape)
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (int(shifts),)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    return Roll.apply(t, shifts=shifts, dims=tuple(normalize_dim(d, t.ndim, "roll") for d in dims))


def _tri(t, diagonal, lower):
    if t.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: needs at least 2 dims, got shape {t.shape}")
    return Tri.apply(t, k=int(diagonal), lower=lower)


def tril(t: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (above ``diagonal`` zeroed)."""
    return _tri(t, diagonal, True)


def triu(t: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (below ``diagonal`` zeroed)."""
    return _tri(t, diagonal, False)


def _index_array(t: Tensor, index, op):
    """An integer index as an int64 array on ``t``'s device."""
    idx = index if isinstance(index, Tensor) else Tensor(np.asarray(index), device=t.device)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must hold integers, got dtype {idx.dtype}")
    return idx.data.astype(np.int64, copy=False)


def _check_along(t, idx, d, op, limit_shape=None):
    if idx.ndim != max(t.ndim, 1) and not (t.ndim == 0 and idx.ndim <= 1):
        raise ValueError(f"{op}: index must have as many dims as the input; got index {tuple(idx.shape)} "
                         f"and input {t.shape}")
    for i, n in enumerate(idx.shape):
        if i != d and t.ndim and n > (limit_shape or t.shape)[i]:
            raise ValueError(f"{op}: index of shape {tuple(idx.shape)} is larger than the input {t.shape} in dim {i}")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        size = t.shape[d] if t.ndim else 1
        if lo < 0 or hi >= size:
            raise IndexError(f"{op}: index {hi if hi >= size else lo} is out of range for dim {d} of size {size}")


def gather(t: Tensor, dim: int, index) -> Tensor:
    """``out[i][j] = t[i][index[i][j]]`` along ``dim``; index has t's rank (may be smaller)."""
    d = normalize_dim(dim, t.ndim, "gather")
    idx = _index_array(t, index, "gather")
    _check_along(t, idx, d, "gather")
    if t.ndim == 0:
        return Reshape.apply(t, shape=idx.shape)
    return Gather.apply(t, index=idx % t.shape[d], dim=d)


def _scatter(t, dim, index, src, value, add, op):
    d = normalize_dim(dim, t.ndim, op)
    idx = _index_array(t, index, op)
    if src is None:
        if value is None:
            raise TypeError(f"{op}: needs src= (a tensor) or value= (a number)")
        src = Tensor._make(np.asarray(value, dtype=t.dtype) if t.device == "cpu" else
                           as_tensor(value, t, t.dtype).data)
    src = src if isinstance(src, Tensor) else as_tensor(src, t, t.dtype)
    _check_along(t, idx, d, op)
    if src.ndim and any(n > m for n, m in zip(idx.shape, src.shape)):
        raise ValueError(f"{op}: index of shape {tuple(idx.shape)} is larger than src {src.shape}")
    src = cast(src, t.dtype)
    return Scatter.apply(t, src, index=idx % max(t.shape[d] if t.ndim else 1, 1), dim=d, add=add)


def scatter(t: Tensor, dim: int, index, src=None, value=None) -> Tensor:
    """A copy of ``t`` with ``src[i]`` (or ``value``) written at ``index[i]`` along ``dim``."""
    return _scatter(t, dim, index, src, value, False, "scatter")


def scatter_add(t: Tensor, dim: int, index, src) -> Tensor:
    """A copy of ``t`` with ``src[i]`` added at ``index[i]`` along ``dim`` (repeats accumulate)."""
    return _scatter(t, dim, index, src, None, True, "scatter_add")


def index_select(t: Tensor, dim: int, index) -> Tensor:
    """The entries ``index`` (1-d) of dim ``dim``."""
    d = normalize_dim(dim, t.ndim, "index_select")
    idx = _index_array(t, index, "index_select")
    if idx.ndim > 1:
        raise ValueError(f"index_select: index must be 1-d, got shape {tuple(idx.shape)}")
    n = t.shape[d] if t.ndim else 1
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"index_select: index out of range for dim {d} of size {n}")
    if t.ndim == 0:
        return Reshape.apply(t, shape=())
    return GetItem.apply(t, index=(slice(None),) * d + (idx.reshape(-1),))


def where(condition, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (broadcast; either may be a number)."""
    if input is None and other is None:
        from .math_functions import nonzero

        return nonzero(condition, as_tuple=True)
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(input)
    a, b = promote(input, other)
    try:
        np.broadcast_shapes(tuple(cond.shape), a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {tuple(cond.shape)}, {a.shape} and {b.shape} do not broadcast") from None
    from ..core import backend

    return Where.apply(backend.to_device(cond, a.device), a, b)


def masked_fill(t: Tensor, mask, value) -> Tensor:
    """``t`` with ``value`` where ``mask`` (broadcast to t's shape) is True."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        if np.broadcast_shapes(tuple(m.shape), t.shape) != t.shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"masked_fill: mask of shape {tuple(m.shape)} does not broadcast to {t.shape}") from None
    if isinstance(value, Tensor):
        if value.ndim:
            raise ValueError(f"masked_fill: value must be a number or 0-d tensor, got shape {value.shape}")
        value = cast(value, t.dtype)
    else:
        value = as_tensor(value, t, t.dtype)
    from ..core import backend

    return Where.apply(backend.to_device(m, t.device), value, t)


def clone(t: Tensor) -> Tensor:
    """A copy that stays in the graph (its gradient flows to ``t``)."""
    return Clone.apply(t)
