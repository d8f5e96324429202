"""PyTorch's element-wise functions on Tensors, with PyTorch's type promotion: the arithmetic
(``add(x, y, alpha=)``...), abs/sign/trig/logs, clamp with number or tensor bounds,
minimum/maximum, lerp, rounding, the is* tests, isclose/allclose. ``minitl.sin`` and
``t.sin()`` are these; the Functions are in arithmetic.py, elementwise.py and unary.py.
"""
from __future__ import annotations

import numpy as np

from ..core.backend import get_array_module, quiet_errors
from ..core.tensor import Tensor
from . import unary
from .arithmetic import Add, Div, MatMul, Mul, Neg, Pow, Sub
from .elementwise import Clip, Exp, Log, Relu, Sigmoid, Sqrt, Tanh
from .promotion import as_tensor, cast, floating, promote


def _tensor(x, op):
    if isinstance(x, Tensor):
        return x
    try:
        return Tensor(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: expected a Tensor or array-like, got {type(x).__name__} ({exc})") from None


def _broadcast_check(a, b, op):
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None


def binary(fn, a, b, op, floating_result=False):
    """``fn.apply`` on ``a`` and ``b`` promoted as PyTorch does; an error names ``op`` and the shapes."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype and not floating_result:
        x, y = a, b  # the common case: no conversion at all
    else:
        x, y = promote(a, b, floating=floating_result)
    if x.shape != y.shape:
        _broadcast_check(x, y, op)
    return fn.apply(x, y)


def add(input, other, alpha=1) -> Tensor:
    """input + alpha * other."""
    return binary(Add, input, other if alpha == 1 else other * alpha, "add")


def sub(input, other, alpha=1) -> Tensor:
    """input - alpha * other."""
    return binary(Sub, input, other if alpha == 1 else other * alpha, "sub")


def mul(input, other) -> Tensor:
    """input * other."""
    return binary(Mul, input, other, "mul")


def div(input, other, rounding_mode=None) -> Tensor:
    """True division (integers give the default float); ``rounding_mode='floor'|'trunc'`` rounds."""
    out = binary(Div, input, other, "div", floating_result=True)
    if rounding_mode is None:
        return out
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    a = input if isinstance(input, Tensor) else other
    rounded = floor(out) if rounding_mode == "floor" else trunc(out)
    ints = isinstance(a, Tensor) and a.dtype.kind in "iu" and (not isinstance(other, Tensor) or other.dtype.kind in "iu")
    return Tensor._make(rounded.data.astype(a.dtype)) if ints and not isinstance(other, float) else rounded


def pow(input, exponent) -> Tensor:
    """input ** exponent (either may be a number)."""
    return binary(Pow, input, exponent, "pow")


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with NumPy's rules for 1-d operands and batch broadcasting."""
    a, b = promote(_tensor(input, "matmul"), other)
    return MatMul.apply(a, b)


def neg(input: Tensor) -> Tensor:
    """-input."""
    return Neg.apply(_tensor(input, "neg"))


def _float_unary(fn):
    def op(input):
        return fn.apply(floating(_tensor(input, fn.__name__.lower())))

    op.__doc__ = f"{fn.__name__.lower()} of every element (integer tensors give the default float)."
    op.__name__ = fn.__name__.lower()
    return op


exp, log, sqrt, tanh, sigmoid = (_float_unary(f) for f in (Exp, Log, Sqrt, Tanh, Sigmoid))
sin, cos, tan, rsqrt, log2, log10, log1p, expm1, exp2, erf = (_float_unary(f) for f in (
    unary.Sin, unary.Cos, unary.Tan, unary.Rsqrt, unary.Log2, unary.Log10, unary.Log1p, unary.Expm1, unary.Exp2,
    unary.Erf))
asin, acos, atan, sinh, cosh, reciprocal = (_float_unary(f) for f in (
    unary.Asin, unary.Acos, unary.Atan, unary.Sinh, unary.Cosh, unary.Reciprocal))


def relu(input: Tensor) -> Tensor:
    """max(input, 0)."""
    return Relu.apply(_tensor(input, "relu"))


def abs(input: Tensor) -> Tensor:
    """|input| (integers stay integers; the gradient at 0 is 0)."""
    t = _tensor(input, "abs")
    if t.dtype.kind != "f":
        return Tensor._make(get_array_module(t.data).abs(t.data))
    return unary.Abs.apply(t)


def square(input: Tensor) -> Tensor:
    """input * input."""
    t = _tensor(input, "square")
    return unary.Square.apply(t) if t.dtype.kind == "f" else Tensor._make(t.data * t.data)


def _no_grad(name, fn, doc):
    def op(input):
        t = _tensor(input, name)
        return Tensor._make(fn(get_array_module(t.data), t.data))

    op.__name__, op.__doc__ = name, doc
    return op


sign = _no_grad("sign", lambda xp, a: xp.sign(a), "-1, 0 or 1 by the sign of each element (no gradient).")
floor = _no_grad("floor", lambda xp, a: xp.floor(a) if a.dtype.kind == "f" else a.copy(), "Round down (no gradient).")
ceil = _no_grad("ceil", lambda xp, a: xp.ceil(a) if a.dtype.kind == "f" else a.copy(), "Round up (no gradient).")
trunc = _no_grad("trunc", lambda xp, a: xp.trunc(a) if a.dtype.kind == "f" else a.copy(),
                 "Round towards zero (no gradient).")
isnan = _no_grad("isnan", lambda xp, a: xp.isnan(a), "True where the element is NaN.")
isinf = _no_grad("isinf", lambda xp, a: xp.isinf(a), "True where the element is +inf or -inf.")
isfinite = _no_grad("isfinite", lambda xp, a: xp.isfinite(a), "True where the element is neither inf nor NaN.")
logical_not = _no_grad("logical_not", lambda xp, a: xp.logical_not(a), "Element-wise not, as bool.")


def round(input: Tensor, decimals: int = 0) -> Tensor:
    """Round half to even, as PyTorch (no gradient); ``decimals`` digits after the point."""
    t = _tensor(input, "round")
    xp = get_array_module(t.data)
    return Tensor._make(xp.round(t.data, decimals) if t.dtype.kind == "f" else t.data.copy())


def clamp(input: Tensor, min=None, max=None) -> Tensor:
    """Limit every element to [min, max]; the bounds are numbers or tensors (broadcast), one may be None."""
    t = _tensor(input, "clamp")
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must not be None")
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        lift = any(isinstance(b, float) for b in (min, max)) and t.dtype.kind != "f"
        return Clip.apply(floating(t) if lift else t, lo=min, hi=max)
    dtype = t.dtype
    for b in (min, max):
        if b is not None:
            dtype = promote(Tensor._make(np.zeros(1, dtype)), b)[0].dtype
    x = cast(t, dtype)
    lo = None if min is None else cast(as_tensor(min, x, dtype), dtype)
    hi = None if max is None else cast(as_tensor(max, x, dtype), dtype)
    for b in (lo, hi):
        if b is not None:
            _broadcast_check(x, b, "clamp")
    return unary.ClampTensor.apply(x, lo, hi)


def clamp_min(input: Tensor, min) -> Tensor:
    """clamp(input, min=min)."""
    return clamp(input, min=min)


def clamp_max(input: Tensor, max) -> Tensor:
    """clamp(input, max=max)."""
    return clamp(input, max=max)


def maximum(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise max (NaN propagates; a tie splits the gradient)."""
    return binary(unary.Maximum, _tensor(input, "maximum"), other, "maximum")


def minimum(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise min (NaN propagates; a tie splits the gradient)."""
    return binary(unary.Minimum, _tensor(input, "minimum"), other, "minimum")


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    """input + weight * (end - input); ``weight`` a number or a tensor."""
    start = _tensor(input, "lerp")
    return start + weight * (end - start)


def isclose(input: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|input - other| <= atol + rtol |other|, element-wise (bool)."""
    a, b = promote(_tensor(input, "isclose"), other)
    _broadcast_check(a, b, "isclose")
    xp = get_array_module(a.data)
    return Tensor._make(xp.isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when every element is close (see :func:`isclose`)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).data.all())


def equal(input: Tensor, other: Tensor) -> bool:
    """True when both have the same shape and the same values."""
    return input.shape == other.shape and bool((input.data == other.data).all())


def nonzero(input, as_tuple: bool = False):
    """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-d tensor per dim."""
    t = _tensor(input, "nonzero")
    xp = get_array_module(t.data)
    idx = xp.nonzero(t.data) if t.ndim else xp.nonzero(t.data.reshape(1))
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64)) for i in idx)
    return Tensor._make(xp.stack(idx, axis=1).astype(np.int64) if idx else xp.zeros((0, 0), dtype=np.int64))


def _logical(name, fn):
    def op(input, other):
        a, b = _tensor(input, name), other.data if isinstance(other, Tensor) else other
        with quiet_errors(get_array_module(a.data), invalid="ignore"):
            return Tensor._make(fn(a.data, b))

    op.__name__, op.__doc__ = name, f"Element-wise {name.split('_')[1]}, as bool."
    return op


logical_and = _logical("logical_and", np.logical_and)
logical_or = _logical("logical_or", np.logical_or)
logical_xor = _logical("logical_xor", np.logical_xor)
