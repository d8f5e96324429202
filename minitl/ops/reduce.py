"""Reductions over axes (with keepdims): sum, mean, max/min, prod, var/std, logsumexp, norm."""
from ..core.backend import get_array_module, quiet_errors
from ..core.function import Function
from ._util import expand_reduced, normalize_axis


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, normalize_axis(axis, a.ndim), keepdims
        ctx.count = 1
        for i in ctx.axes:
            ctx.count *= a.shape[i]
        return a.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return expand_reduced(g / ctx.count, ctx.shape, ctx.axes, ctx.keepdims)


class Max(Function):
    """amax (``smallest=False``) or amin over axes; NaN propagates."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, smallest=False):
        axes = normalize_axis(axis, a.ndim)
        if a.size == 0 and any(a.shape[i] == 0 for i in axes):
            raise ValueError(f"{'min' if smallest else 'max'}: cannot reduce an empty dimension "
                             f"of a tensor of shape {a.shape}")
        out = a.min(axis=axes, keepdims=True) if smallest else a.max(axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        # Ties share the gradient equally, so the result is the subgradient
        # that does not depend on which equal element a kernel happened to pick.
        a, out = ctx.saved
        xp = get_array_module(a)
        mask = ((a == out) | (xp.isnan(a) & xp.isnan(out))).astype(g.dtype)
        mask /= mask.sum(axis=ctx.axes, keepdims=True)
        return mask * expand_reduced(g, a.shape, ctx.axes, ctx.keepdims)


class Prod(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        # One axis at a time (None flattens first): the zero-safe backward needs a scan axis.
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        flat = a.reshape(-1) if axis is None else a
        ax = 0 if axis is None else axis
        ctx.save_for_backward(flat)
        ctx.ax = ax
        out = flat.prod(axis=ax, keepdims=keepdims and axis is not None)
        return out.reshape((1,) * a.ndim) if (axis is None and keepdims) else out

    @staticmethod
    def backward(ctx, g):
        # d prod / d a_i = product of the others = (exclusive cumprod from the left) * (from the right),
        # which stays right when some a_j are 0 (out / a_i would be 0/0).
        (flat,) = ctx.saved
        xp = get_array_module(flat)
        ax = ctx.ax
        n = flat.shape[ax]
        if n == 0:
            return xp.zeros(ctx.shape, dtype=g.dtype)
        first, head = (slice(None),) * ax + (slice(0, 1),), (slice(None),) * ax + (slice(0, n - 1),)
        ones = xp.ones_like(flat[first])
        left = xp.concatenate([ones, xp.cumprod(flat[head], axis=ax)], axis=ax)
        rev = xp.flip(flat, axis=ax)
        right = xp.flip(xp.concatenate([ones, xp.cumprod(rev[head], axis=ax)], axis=ax), axis=ax)
        gg = g.reshape(()) if ctx.axis is None else (g if ctx.keepdims else xp.expand_dims(g, ax))
        return (left * right * gg).reshape(ctx.shape)


class Var(Function):
    """Variance over axes with ``correction`` (N - correction in the denominator); std when ``root``."""

    @staticmethod
    def forward(ctx, a, axis=None, correction=1, keepdims=False, root=False):
        xp = get_array_module(a)
        axes = normalize_axis(axis, a.ndim)
        count = 1
        for i in axes:
            count *= a.shape[i]
        centered = a - a.mean(axis=axes, keepdims=True) if count else a
        with quiet_errors(xp, divide="ignore", invalid="ignore"):
            # N <= correction gives inf or NaN, as in PyTorch (0/0 is NaN, x/0 inf)
            var = (centered * centered).sum(axis=axes, keepdims=True) / max(count - correction, 0)
        out = xp.sqrt(var) if root else var
        ctx.save_for_backward(centered, out)
        ctx.axes, ctx.keepdims, ctx.denom, ctx.root = axes, keepdims, max(count - correction, 0), root
        return (out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])).astype(
            a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d var = 2 (a - mean) / (N - c); d std = (a - mean) / ((N - c) std)
        centered, out = ctx.saved
        xp = get_array_module(g)
        g = expand_reduced(g, centered.shape, ctx.axes, ctx.keepdims)
        with quiet_errors(xp, divide="ignore", invalid="ignore"):
            scale = 1.0 / (ctx.denom * out) if ctx.root else 2.0 / ctx.denom
            return (g * centered * scale).astype(g.dtype, copy=False)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        xp = get_array_module(a)
        axes = normalize_axis(axis, a.ndim)
        m = a.max(axis=axes, keepdims=True) if a.size else xp.zeros([1] * a.ndim, dtype=a.dtype)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf stays -inf, +inf stays +inf
        with quiet_errors(xp, divide="ignore"):
            out = xp.log(xp.exp(a - m).sum(axis=axes, keepdims=True)) + m
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        # d logsumexp = softmax(a) = exp(a - out)
        a, out = ctx.saved
        xp = get_array_module(g)
        return expand_reduced(g, a.shape, ctx.axes, ctx.keepdims) * xp.exp(a - out)


class Norm2(Function):
    """The Euclidean norm sqrt(sum a^2) over axes."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        xp = get_array_module(a)
        axes = normalize_axis(axis, a.ndim)
        out = xp.sqrt((a * a).sum(axis=axes, keepdims=True))
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        # d ||a|| = a / ||a||, taken as 0 where the norm is 0 (PyTorch's subgradient)
        a, out = ctx.saved
        xp = get_array_module(g)
        safe = xp.where(out == 0, 1, out)
        return expand_reduced(g, a.shape, ctx.axes, ctx.keepdims) * xp.where(out == 0, 0, a / safe)
