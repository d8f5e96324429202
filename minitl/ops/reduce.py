"""Reductions: sum, mean, max over axes, with keepdims."""
from ..core.backend import get_array_module
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
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        axes = normalize_axis(axis, a.ndim)
        out = a.max(axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        # Ties share the gradient equally, so the result is the subgradient
        # that does not depend on which equal element a kernel happened to pick.
        a, out = ctx.saved
        mask = (a == out).astype(g.dtype)
        mask /= mask.sum(axis=ctx.axes, keepdims=True)
        return mask * expand_reduced(g, a.shape, ctx.axes, ctx.keepdims)
