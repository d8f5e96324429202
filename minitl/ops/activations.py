"""Activation functions, each a ``Function`` with its forward beside its backward.

Written on raw ``xp`` arrays (NumPy or CuPy) in the input's dtype; the
branches of piecewise ones use ``where`` so NaN propagates and nothing
overflows (``exp`` only ever sees non-positive arguments).
"""
from __future__ import annotations

import math

from ..core.backend import get_array_module, quiet_errors
from ..core.function import Function
from .special import erf

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _softplus(xp, a):
    """log(1 + e^a) = max(a, 0) + log1p(e^-|a|), which never overflows."""
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def _sigmoid(xp, a):
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


class LeakyRelu(Function):
    @staticmethod
    def forward(ctx, a, slope=0.01):
        ctx.save_for_backward(a)
        ctx.slope = slope
        return get_array_module(a).where(a > 0, a, a * slope).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = 1 for a > 0, slope otherwise
        (a,) = ctx.saved
        return g * get_array_module(g).where(a > 0, 1.0, ctx.slope).astype(g.dtype, copy=False)


class Elu(Function):
    """ELU family: scale * (a if a > 0 else alpha * (exp(a / beta) - 1)); CELU is beta = alpha, SELU fixed."""

    @staticmethod
    def forward(ctx, a, alpha=1.0, scale=1.0, beta=1.0):
        xp = get_array_module(a)
        neg = alpha * xp.expm1(xp.minimum(a, 0) / beta)
        ctx.save_for_backward(a, neg)
        ctx.params = (alpha, scale, beta)
        return (scale * xp.where(a > 0, a, neg)).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = scale for a > 0, scale * (neg + alpha) / beta = scale * alpha/beta * exp(a/beta) otherwise
        a, neg = ctx.saved
        alpha, scale, beta = ctx.params
        xp = get_array_module(g)
        return (g * scale * xp.where(a > 0, 1.0, (neg + alpha) / beta)).astype(g.dtype, copy=False)


class Gelu(Function):
    """a * Phi(a); ``approximate='tanh'`` uses 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))."""

    @staticmethod
    def forward(ctx, a, approximate="none"):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        ctx.approximate = approximate
        if approximate == "tanh":
            return (0.5 * a * (1 + xp.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a ** 3)))).astype(a.dtype, copy=False)
        return (0.5 * a * (1 + erf(a / math.sqrt(2.0)))).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # exact: d = Phi(a) + a phi(a); tanh: d = 0.5 (1 + t) + 0.5 a (1 - t^2) k (1 + 3 * 0.044715 a^2)
        (a,) = ctx.saved
        xp = get_array_module(g)
        if ctx.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a ** 3))
            d = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * a * a)
        else:
            d = 0.5 * (1 + erf(a / math.sqrt(2.0))) + a * _INV_SQRT_2PI * xp.exp(-0.5 * a * a)
        return (g * d).astype(g.dtype, copy=False)


class Silu(Function):
    @staticmethod
    def forward(ctx, a):
        s = _sigmoid(get_array_module(a), a)
        ctx.save_for_backward(a, s)
        return (a * s).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d (a s(a)) = s + a s (1 - s)
        a, s = ctx.saved
        return (g * (s * (1 + a * (1 - s)))).astype(g.dtype, copy=False)


class Mish(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        t = xp.tanh(_softplus(xp, a))
        ctx.save_for_backward(a, t)
        return (a * t).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d (a tanh(sp(a))) = t + a (1 - t^2) sigmoid(a)
        a, t = ctx.saved
        xp = get_array_module(g)
        return (g * (t + a * (1 - t * t) * _sigmoid(xp, a))).astype(g.dtype, copy=False)


class Softplus(Function):
    """log(1 + exp(beta a)) / beta, linear (a) where beta a > threshold, as PyTorch."""

    @staticmethod
    def forward(ctx, a, beta=1.0, threshold=20.0):
        xp = get_array_module(a)
        z = a * beta
        ctx.save_for_backward(z)
        ctx.threshold = threshold
        with quiet_errors(xp, over="ignore"):
            return xp.where(z > threshold, a, _softplus(xp, z) / beta).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = sigmoid(beta a), 1 in the linear region
        (z,) = ctx.saved
        xp = get_array_module(g)
        return (g * xp.where(z > ctx.threshold, 1.0, _sigmoid(xp, z))).astype(g.dtype, copy=False)


class LogSigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        return (-_softplus(xp, -a)).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d log s(a) = 1 - s(a) = s(-a)
        (a,) = ctx.saved
        return (g * _sigmoid(get_array_module(g), -a)).astype(g.dtype, copy=False)


class Softsign(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        return a / (1 + xp.abs(a))

    @staticmethod
    def backward(ctx, g):
        # d a/(1+|a|) = 1/(1+|a|)^2
        (a,) = ctx.saved
        d = 1 + get_array_module(g).abs(a)
        return g / (d * d)


class Hardtanh(Function):
    """clamp(a, lo, hi) whose gradient is 1 strictly inside (lo, hi), as PyTorch's hardtanh and relu6."""

    @staticmethod
    def forward(ctx, a, lo=-1.0, hi=1.0):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        ctx.bounds = (lo, hi)
        return xp.where(xp.isnan(a), a, xp.clip(a, lo, hi)).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = 1 inside (lo, hi), 0 outside and at the bounds
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        return g * ((a > lo) & (a < hi))


class Hardsigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        return xp.where(xp.isnan(a), a, xp.clip(a / 6 + 0.5, 0, 1)).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = 1/6 on (-3, 3), 0 elsewhere
        (a,) = ctx.saved
        return g * ((a > -3) & (a < 3)) / 6


class Hardswish(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        return (a * xp.clip(a + 3, 0, 6) / 6).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d = 0 up to -3, (2a + 3)/6 on (-3, 3), 1 from 3 on (PyTorch's choice at the kinks)
        (a,) = ctx.saved
        xp = get_array_module(g)
        d = xp.where(a <= -3, 0.0, xp.where(a < 3, (2 * a + 3) / 6, 1.0))
        return (g * d).astype(g.dtype, copy=False)
