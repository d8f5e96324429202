"""Element-wise maths as one table: each row is a ``Function`` made from its forward and its
derivative, written side by side (``xp`` is NumPy or CuPy; ``a`` the input, ``y`` the output).

Ops without a gradient (floor, ceil, round, trunc, sign, the is* tests) are
plain array functions in :mod:`minitl.ops.functions`.
"""
from __future__ import annotations

import math

from ..core.backend import get_array_module, quiet_errors
from ..core.function import Function
from .special import erf

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _unary(name, forward, derivative, doc):
    """A Function computing ``forward(xp, a)`` whose backward is ``g * derivative(xp, a, y)``."""

    def fwd(ctx, a):
        xp = get_array_module(a)
        with quiet_errors(xp, divide="ignore", invalid="ignore", over="ignore"):
            y = forward(xp, a)
        y = y.astype(a.dtype, copy=False)
        ctx.save_for_backward(a, y)
        return y

    def bwd(ctx, g):
        a, y = ctx.saved
        xp = get_array_module(g)
        with quiet_errors(xp, divide="ignore", invalid="ignore", over="ignore"):
            return (g * derivative(xp, a, y)).astype(g.dtype, copy=False)

    return type(name, (Function,), {"forward": staticmethod(fwd), "backward": staticmethod(bwd), "__doc__": doc})


# name, forward, derivative (the one-line derivative comment is the lambda itself)
Abs = _unary("Abs", lambda xp, a: xp.abs(a), lambda xp, a, y: xp.sign(a), "|a|; d|a| = sign(a) (0 at 0, as PyTorch)")
Sin = _unary("Sin", lambda xp, a: xp.sin(a), lambda xp, a, y: xp.cos(a), "sin; d sin = cos")
Cos = _unary("Cos", lambda xp, a: xp.cos(a), lambda xp, a, y: -xp.sin(a), "cos; d cos = -sin")
Tan = _unary("Tan", lambda xp, a: xp.tan(a), lambda xp, a, y: 1 + y * y, "tan; d tan = 1 + tan^2")
Rsqrt = _unary("Rsqrt", lambda xp, a: 1 / xp.sqrt(a), lambda xp, a, y: -0.5 * y * y * y,
               "1/sqrt(a); d = -a^(-3/2) / 2")
Log2 = _unary("Log2", lambda xp, a: xp.log2(a), lambda xp, a, y: 1 / (a * _LN2), "log2; d = 1 / (a ln 2)")
Log10 = _unary("Log10", lambda xp, a: xp.log10(a), lambda xp, a, y: 1 / (a * _LN10), "log10; d = 1 / (a ln 10)")
Log1p = _unary("Log1p", lambda xp, a: xp.log1p(a), lambda xp, a, y: 1 / (1 + a), "log(1 + a), exact near 0; d = 1/(1+a)")
Expm1 = _unary("Expm1", lambda xp, a: xp.expm1(a), lambda xp, a, y: y + 1, "exp(a) - 1, exact near 0; d = exp(a)")
Exp2 = _unary("Exp2", lambda xp, a: xp.exp2(a), lambda xp, a, y: y * _LN2, "2^a; d = 2^a ln 2")
Erf = _unary("Erf", lambda xp, a: erf(a), lambda xp, a, y: _TWO_OVER_SQRT_PI * xp.exp(-a * a),
             "erf; d erf = 2/sqrt(pi) exp(-a^2)")
Square = _unary("Square", lambda xp, a: a * a, lambda xp, a, y: 2 * a, "a^2; d = 2a")
Reciprocal = _unary("Reciprocal", lambda xp, a: 1 / a, lambda xp, a, y: -y * y, "1/a; d = -1/a^2")
Asin = _unary("Asin", lambda xp, a: xp.arcsin(a), lambda xp, a, y: 1 / xp.sqrt(1 - a * a), "asin; d = 1/sqrt(1-a^2)")
Acos = _unary("Acos", lambda xp, a: xp.arccos(a), lambda xp, a, y: -1 / xp.sqrt(1 - a * a), "acos; d = -1/sqrt(1-a^2)")
Atan = _unary("Atan", lambda xp, a: xp.arctan(a), lambda xp, a, y: 1 / (1 + a * a), "atan; d = 1/(1+a^2)")
Sinh = _unary("Sinh", lambda xp, a: xp.sinh(a), lambda xp, a, y: xp.cosh(a), "sinh; d = cosh")
Cosh = _unary("Cosh", lambda xp, a: xp.cosh(a), lambda xp, a, y: xp.sinh(a), "cosh; d = sinh")


class Maximum(Function):
    """Element-wise max of two broadcast arrays; NaN wins (as PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = get_array_module(a, b)
        ctx.save_for_backward(a, b)
        return xp.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        # d max(a, b): to a where a > b, to b where b > a, half each on a tie (PyTorch's rule).
        from ._util import unbroadcast

        a, b = ctx.saved
        share = (a > b) + 0.5 * (a == b)
        return unbroadcast(g * share, a.shape), unbroadcast(g * (1 - share), b.shape)


class Minimum(Function):
    """Element-wise min of two broadcast arrays; NaN wins (as PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = get_array_module(a, b)
        ctx.save_for_backward(a, b)
        return xp.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        # d min(a, b): to a where a < b, to b where b < a, half each on a tie.
        from ._util import unbroadcast

        a, b = ctx.saved
        share = (a < b) + 0.5 * (a == b)
        return unbroadcast(g * share, a.shape), unbroadcast(g * (1 - share), b.shape)


class ClampTensor(Function):
    """clamp(a, lo, hi) with tensor bounds (either may be None): min(max(a, lo), hi)."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        xp = get_array_module(a)
        out = a
        if lo is not None:
            out = xp.where(xp.isnan(a), a, xp.maximum(out, lo))
        if hi is not None:
            out = xp.where(xp.isnan(a), a, xp.minimum(out, hi))
        ctx.save_for_backward(a, lo, hi, out)
        return out

    @staticmethod
    def backward(ctx, g):
        # d clamp (PyTorch's rule): to a where lo <= a <= hi; to lo where a < lo < hi;
        # to hi where a > hi or hi < lo.
        from ._util import unbroadcast

        a, lo, hi, out = ctx.saved
        xp = get_array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        inside = xp.ones(out.shape, dtype=bool)
        if lo is not None:
            inside = inside & (a >= lo)
        if hi is not None:
            inside = inside & (a <= hi)
        da = unbroadcast(xp.where(inside, g, zero), a.shape) if ctx.needs_input_grad[0] else None
        dlo = dhi = None
        if lo is not None and ctx.needs_input_grad[1]:
            to_lo = (a < lo) & (lo < hi) if hi is not None else a < lo
            dlo = unbroadcast(xp.where(to_lo, g, zero), lo.shape)
        if hi is not None and ctx.needs_input_grad[2]:
            to_hi = (a > hi) | (hi < lo) if lo is not None else a > hi
            dhi = unbroadcast(xp.where(to_hi, g, zero), hi.shape)
        return da, dlo, dhi
