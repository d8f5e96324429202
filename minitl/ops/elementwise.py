"""Element-wise maths: exp, log, sqrt, tanh, sigmoid, relu, clip."""
from ..core.backend import get_array_module
from ..core.function import Function


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = get_array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).log(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved
        return g / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = get_array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g / (2 * out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = get_array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        # Two branches so exp never overflows: e^x/(1+e^x) for x<0.
        e = xp.exp(-xp.abs(a))
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * out * (1 - out)


class Relu(Function):
    @staticmethod
    def forward(ctx, a):
        out = get_array_module(a).maximum(a, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * (out > 0)


class Clip(Function):
    @staticmethod
    def forward(ctx, a, lo=None, hi=None):
        xp = get_array_module(a)
        ctx.save_for_backward(a)
        ctx.bounds = (lo, hi)
        return xp.clip(a, lo, hi) if (lo is not None or hi is not None) else a.copy()

    @staticmethod
    def backward(ctx, g):
        # The gradient passes where the input lies inside [lo, hi] (bounds included).
        (a,) = ctx.saved
        lo, hi = ctx.bounds
        mask = 1
        if lo is not None:
            mask = mask * (a >= lo)
        if hi is not None:
            mask = mask * (a <= hi)
        return g * mask
