"""Ops that rearrange elements: cat, stack, expand, repeat, flip, roll, tril/triu, constant pad.
Each forward beside its backward; arguments are checked by the callers in functions.py."""
from __future__ import annotations

from ..core.backend import get_array_module
from ..core.function import Function
from ._util import unbroadcast


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        ctx.sizes, ctx.dim = [a.shape[dim] for a in arrays], dim
        return get_array_module(*arrays).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        # d cat = the matching slice of g for each input.
        out, start = [], 0
        for n in ctx.sizes:
            out.append(g[(slice(None),) * ctx.dim + (slice(start, start + n),)])
            start += n
        return tuple(out)


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        ctx.count, ctx.dim = len(arrays), dim
        return get_array_module(*arrays).stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        # d stack = g's i-th slice along dim for input i.
        return tuple(g[(slice(None),) * ctx.dim + (i,)] for i in range(ctx.count))


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return get_array_module(a).broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        # d expand = sum over the broadcast axes
        return unbroadcast(g, ctx.shape)


class Repeat(Function):
    """PyTorch's ``repeat`` (NumPy's ``tile``): ``a`` (padded with leading 1s) tiled ``reps`` times."""

    @staticmethod
    def forward(ctx, a, reps):
        shape = (1,) * (len(reps) - a.ndim) + a.shape
        ctx.shape, ctx.padded, ctx.reps = a.shape, shape, reps
        return get_array_module(a).tile(a.reshape(shape), reps)

    @staticmethod
    def backward(ctx, g):
        # d repeat = the sum of the copies: view g as (r0, s0, r1, s1, ...) and sum the r axes.
        split = []
        for r, n in zip(ctx.reps, ctx.padded):
            split += [r, n]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(ctx.shape)


class Flip(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return get_array_module(a).flip(a, axis=dims).copy()

    @staticmethod
    def backward(ctx, g):
        # d flip = flip of g
        return get_array_module(g).flip(g, axis=ctx.dims)


class Roll(Function):
    @staticmethod
    def forward(ctx, a, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return get_array_module(a).roll(a, shifts, axis=dims)

    @staticmethod
    def backward(ctx, g):
        # d roll = roll back
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return get_array_module(g).roll(g, neg, axis=ctx.dims)


class Tri(Function):
    """``tril`` (lower=True) or ``triu`` of the last two dims, keeping diagonal offset ``k``."""

    @staticmethod
    def forward(ctx, a, k=0, lower=True):
        xp = get_array_module(a)
        ctx.k, ctx.lower = k, lower
        return xp.tril(a, k) if lower else xp.triu(a, k)

    @staticmethod
    def backward(ctx, g):
        # d tril = tril of g (the kept entries pass their gradient, the zeroed ones none)
        xp = get_array_module(g)
        return xp.tril(g, ctx.k) if ctx.lower else xp.triu(g, ctx.k)


class ConstantPad(Function):
    """Pad with ``value``; ``widths`` is NumPy's per-axis ``(before, after)``, all >= 0."""

    @staticmethod
    def forward(ctx, a, widths, value=0.0):
        ctx.keep = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, a.shape))
        return get_array_module(a).pad(a, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        # d pad = the un-padded window of g
        return g[ctx.keep]
