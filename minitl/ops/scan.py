"""Running sums and products along one dim: cumsum, cumprod, forward beside backward."""
from __future__ import annotations

from ..core.backend import get_array_module
from ..core.function import Function


def _reverse_cumsum(xp, g, axis):
    return xp.flip(xp.cumsum(xp.flip(g, axis=axis), axis=axis), axis=axis)


class CumSum(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        return get_array_module(a).cumsum(a, axis=axis).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        # d cumsum: each input feeds every later output, so the gradient is the reversed cumsum.
        return _reverse_cumsum(get_array_module(g), g, ctx.axis)


class CumProd(Function):
    @staticmethod
    def forward(ctx, a, axis):
        out = get_array_module(a).cumprod(a, axis=axis).astype(a.dtype, copy=False)
        ctx.save_for_backward(a, out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        # d out_j / d a_k = prod_{i <= j, i != k} a_i for j >= k. Without zeros that is
        # out_j / a_k (a reversed cumsum of g * out, over a); with zeros, recompute per k.
        a, out = ctx.saved
        xp = get_array_module(g)
        ax = ctx.axis
        if not bool((a == 0).any()):
            return _reverse_cumsum(xp, g * out, ax) / a
        grad = xp.zeros_like(g)
        n = a.shape[ax]
        for k in range(n):
            without = a.copy()
            idx = (slice(None),) * ax + (k,)
            without[idx] = 1
            partial = xp.cumprod(without, axis=ax)
            tail = (slice(None),) * ax + (slice(k, n),)
            grad[idx] = (g[tail] * partial[tail]).sum(axis=ax)
        return grad
