"""The operators and methods of ``Tensor`` that are differentiable ops; :func:`install` binds them.

``minitl/core/tensor.py`` lists each name with the op it comes from. The
methods are the functions of math_functions.py, shape_functions.py and
reduce_functions.py with the tensor as first argument, so ``t.sum(1)`` and
``minitl.sum(t, 1)`` are one code path.
"""
from __future__ import annotations

import numpy as np

from ..core import backend
from ..core.tensor import Tensor
from . import math_functions as M
from . import reduce_functions as R
from . import shape_functions as S
from .arithmetic import Add, Div, Mul, Pow, Sub
from .indexing import getitem, setitem
from .shape import AsType, Reshape, ToDevice, Transpose


def _binary(fn, name, swap=False, floating_result=False):
    def op(self, other):
        if swap:
            return M.binary(fn, other, self, name, floating_result)
        return M.binary(fn, self, other, name, floating_result)

    op.__name__ = name
    return op


def _compare(name):
    def op(self, other):
        other = other.data if isinstance(other, Tensor) else other
        if isinstance(other, list):
            other = np.asarray(other)
        try:
            return Tensor._make(getattr(self.data, name)(other))
        except ValueError:
            raise ValueError(f"{name.strip('_')}: shapes {self.shape} and {np.shape(other)} do not broadcast") from None

    return op


def reshape(self, *shape):
    """The same values in a new shape (one dimension may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def transpose(self, *axes):
    """Reverse the axes (no argument), swap two (``t.transpose(0, 1)``), or permute."""
    if not axes:
        return Transpose.apply(self, axes=None)
    if len(axes) == 1:
        return Transpose.apply(self, axes=tuple(axes[0]))
    if len(axes) == 2:
        perm = list(range(self.ndim))
        n = max(self.ndim, 1)
        for d in axes:
            if not -n <= d < n:
                raise IndexError(f"transpose: dim {d} is out of range for a tensor of shape {self.shape}")
        if self.ndim < 2:
            return self
        a, b = axes[0] % self.ndim, axes[1] % self.ndim
        perm[a], perm[b] = perm[b], perm[a]
        return Transpose.apply(self, axes=tuple(perm))
    return Transpose.apply(self, axes=axes)


def permute(self, *axes):
    """Reorder the axes: ``t.permute(0, 2, 3, 1)``."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose.apply(self, axes=axes)


def flatten(self, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim..end_dim`` into one."""
    nd = self.ndim
    if nd == 0:
        return Reshape.apply(self, shape=(1,))
    s, e = start_dim % nd, end_dim % nd
    shape = self.shape[:s] + (-1,) + self.shape[e + 1:]
    return Reshape.apply(self, shape=shape)


def _is_dtype(v) -> bool:
    if isinstance(v, (np.dtype, type)) and not isinstance(v, str):
        try:
            np.dtype(v)
            return True
        except TypeError:
            return False
    return isinstance(v, str) and v not in ("cpu", "cuda") and not v.startswith("cuda:")


def to(self, *args, dtype=None, device=None, **_):
    """``t.to(device)``, ``t.to(dtype)``, ``t.to(device, dtype)`` or ``t.to(other_tensor)``;
    differentiable, a no-op when nothing changes."""
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif _is_dtype(a):
            dtype = a
        else:
            device = a
    out = self
    if device is not None:
        device = backend.normalize_device(device)
        if device != out.device:
            out = ToDevice.apply(out, device=device)
    if dtype is not None and np.dtype(dtype) != out.dtype:
        out = astype(out, dtype)
    return out


def astype(self, dtype):
    """A copy with another dtype (differentiable between float types)."""
    dtype = np.dtype(dtype)
    if self.requires_grad and dtype.kind != "f":
        return Tensor._make(self.data.astype(dtype))  # an integer copy has no gradient
    return AsType.apply(self, dtype=dtype)


def _new(factory):
    def make(self, *size, dtype=None, device=None, requires_grad=False, **kw):
        from ..core import creation

        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        return getattr(creation, factory)(size, **kw, dtype=dtype or self.dtype, device=device or self.device,
                                          requires_grad=requires_grad)

    make.__doc__ = f"A {factory} tensor with this tensor's dtype and device (unless given)."
    return make


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``size`` filled with ``fill_value``, with this tensor's dtype and device."""
    from ..core import creation

    return creation.full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                         requires_grad=requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor from ``data``, with this tensor's dtype and device unless given."""
    return Tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _dimmed(fn):
    """``fn(self, dim)`` accepting ``dim=`` or ``axis=``."""
    def op(self, *args, **kwargs):
        if "axis" in kwargs:
            kwargs["dim"] = kwargs.pop("axis")
        return fn(self, *args, **kwargs)

    op.__name__, op.__doc__ = fn.__name__, fn.__doc__
    return op


def _setitem(self, key, value):
    setitem(self, key, value)


def _mT(self):
    if self.ndim < 2:
        raise ValueError(f"mT: needs at least 2 dims, got shape {self.shape}")
    return transpose(self, -2, -1)


def _T(self):
    return self if self.ndim < 2 else transpose(self)


_METHODS = {
    # element-wise (math_functions.py)
    "add": M.add, "sub": M.sub, "mul": M.mul, "div": M.div, "pow": M.pow, "matmul": M.matmul, "neg": M.neg,
    "exp": M.exp, "log": M.log, "sqrt": M.sqrt, "tanh": M.tanh, "sigmoid": M.sigmoid, "relu": M.relu,
    "abs": M.abs, "sign": M.sign, "sin": M.sin, "cos": M.cos, "tan": M.tan, "rsqrt": M.rsqrt, "log2": M.log2,
    "log10": M.log10, "log1p": M.log1p, "expm1": M.expm1, "exp2": M.exp2, "erf": M.erf, "square": M.square,
    "reciprocal": M.reciprocal, "floor": M.floor, "ceil": M.ceil, "round": M.round, "trunc": M.trunc,
    "isnan": M.isnan, "isinf": M.isinf, "isfinite": M.isfinite, "isclose": M.isclose, "allclose": M.allclose,
    "clamp": M.clamp, "clip": M.clamp, "clamp_min": M.clamp_min, "clamp_max": M.clamp_max,
    "maximum": M.maximum, "minimum": M.minimum, "lerp": M.lerp, "equal": M.equal, "nonzero": M.nonzero,
    "logical_not": M.logical_not, "logical_and": M.logical_and, "logical_or": M.logical_or,
    # shapes (shape_functions.py)
    "squeeze": S.squeeze, "unsqueeze": S.unsqueeze, "expand": S.expand, "expand_as": S.expand_as,
    "repeat": S.repeat, "flip": S.flip, "roll": S.roll, "tril": S.tril, "triu": S.triu, "unflatten": S.unflatten,
    "gather": S.gather, "scatter": S.scatter, "scatter_add": S.scatter_add, "index_select": S.index_select,
    "masked_fill": S.masked_fill, "narrow": S.narrow, "split": S.split, "chunk": S.chunk, "unbind": S.unbind,
    "movedim": S.movedim, "clone": S.clone,
    # reductions (reduce_functions.py)
    "sum": R.sum, "mean": R.mean, "max": R.max, "min": R.min, "amax": R.amax, "amin": R.amin,
    "argmax": R.argmax, "argmin": R.argmin, "prod": R.prod, "var": R.var, "std": R.std,
    "logsumexp": R.logsumexp, "any": R.any, "all": R.all, "cumsum": R.cumsum, "cumprod": R.cumprod,
    "norm": R.norm, "sort": R.sort, "argsort": R.argsort, "topk": R.topk,
}
_DIMMED = {"squeeze", "unsqueeze", "flip", "gather", "scatter", "scatter_add", "index_select", "narrow", "split",
           "chunk", "unbind", "cumsum", "cumprod", "sort", "argsort", "topk", "logsumexp", "any", "all", "prod",
           "norm", "amax", "amin"}


def install(Tensor) -> None:
    """Attach operators and methods to the Tensor class."""
    Tensor.__add__ = _binary(Add, "add")
    Tensor.__radd__ = _binary(Add, "add", swap=True)
    Tensor.__sub__ = _binary(Sub, "sub")
    Tensor.__rsub__ = _binary(Sub, "sub", swap=True)
    Tensor.__mul__ = _binary(Mul, "mul")
    Tensor.__rmul__ = _binary(Mul, "mul", swap=True)
    Tensor.__truediv__ = _binary(Div, "div", floating_result=True)
    Tensor.__rtruediv__ = _binary(Div, "div", swap=True, floating_result=True)
    Tensor.__pow__ = _binary(Pow, "pow")
    Tensor.__rpow__ = _binary(Pow, "pow", swap=True)
    Tensor.__matmul__ = lambda self, other: M.matmul(self, other)
    Tensor.__rmatmul__ = lambda self, other: M.matmul(Tensor(other, device=self.device), self)
    Tensor.__neg__ = lambda self: M.neg(self)
    Tensor.__abs__ = lambda self: M.abs(self)
    Tensor.__invert__ = lambda self: M.logical_not(self) if self.dtype.kind == "b" else Tensor._make(~self.data)
    Tensor.__and__ = lambda self, other: M.logical_and(self, other)
    Tensor.__or__ = lambda self, other: M.logical_or(self, other)
    for name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        setattr(Tensor, name, _compare(name))
    Tensor.__hash__ = object.__hash__  # __eq__ is element-wise, identity hashes
    Tensor.__getitem__ = getitem
    Tensor.__setitem__ = _setitem
    Tensor.reshape = reshape
    Tensor.view = reshape
    Tensor.view_as = lambda self, other: reshape(self, other.shape)
    Tensor.reshape_as = lambda self, other: reshape(self, other.shape)
    Tensor.transpose = transpose
    Tensor.permute = permute
    Tensor.flatten = flatten
    for name, fn in _METHODS.items():
        setattr(Tensor, name, _dimmed(fn) if name in _DIMMED else fn)
    Tensor.T = property(_T)
    Tensor.mT = property(_mT)
    Tensor.to = to
    Tensor.cpu = lambda self: self.to("cpu")
    Tensor.cuda = lambda self: self.to("cuda")
    Tensor.astype = astype
    Tensor.type_as = lambda self, other: to(self, dtype=other.dtype)
    Tensor.float = lambda self: to(self, dtype=np.float32)
    Tensor.double = lambda self: to(self, dtype=np.float64)
    Tensor.half = lambda self: to(self, dtype=np.float16)
    Tensor.long = lambda self: to(self, dtype=np.int64)
    Tensor.int = lambda self: to(self, dtype=np.int32)
    Tensor.bool = lambda self: to(self, dtype=np.bool_)
    Tensor.new_zeros = _new("zeros")
    Tensor.new_ones = _new("ones")
    Tensor.new_empty = _new("empty")
    Tensor.new_full = new_full
    Tensor.new_tensor = new_tensor
    missing = [n for n in Tensor.INSTALLED if n not in vars(Tensor)]
    if missing:  # the listing in core/tensor.py is the reader's map: keep it true
        raise AssertionError(f"Tensor.INSTALLED names {missing}, which install() does not bind")
