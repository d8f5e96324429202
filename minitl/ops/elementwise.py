"""Element-wise maths: exp, log, sqrt, tanh, sigmoid, relu, clip."""
from ..core.backend import get_array_module, quiet_errors
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
        xp = get_array_module(a)
        with quiet_errors(xp, divide="ignore", invalid="ignore"):  # log 0 = -inf, log -1 = NaN: values
            return xp.log(a)

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
        if lo is None and hi is None:
            raise ValueError("clamp: at least one of min and max must not be None")
        ctx.save_for_backward(a)
        ctx.bounds = (lo, hi)
        return xp.clip(a, lo, hi)

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
