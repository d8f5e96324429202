"""Normalisation ops: BatchNorm as one Function (the kernel computes the batch
statistics and updates the running buffers), and the plain normalisation
``(x - mean) / sqrt(var + eps)`` over chosen axes that LayerNorm and GroupNorm
build on."""
from __future__ import annotations

from .. import kernels
from ..core.backend import device_of, get_array_module
from ..core.function import Function


class BatchNorm(Function):
    """y = (x - mean) * invstd * weight + bias per channel of (N, C, *spatial).

    ``training``: batch statistics, and ``running_mean``/``running_var`` (raw
    arrays, or None) updated in place with ``factor``; else the running ones.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean=None, running_var=None, training=True, factor=0.1,
                eps=1e-5):
        # The backward kernel is chosen with the forward one, so both run on one backend.
        device = device_of(x)
        fwd, ctx.bwd = kernels.get("batch_norm_forward", device), kernels.get("batch_norm_backward", device)
        y, mean, invstd = fwd(x, weight, bias, running_mean, running_var, training, factor, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx, g):
        # d/dx: invstd*w/M * (M g - sum g - xhat sum(g xhat)) in train, invstd*w*g in eval
        x, weight, mean, invstd = ctx.saved
        needs = ctx.needs_input_grad
        return ctx.bwd(g, x, weight, mean, invstd, ctx.training, needs)


class Normalize(Function):
    """(x - mean) / sqrt(var + eps), the statistics over ``axes`` (biased variance)."""

    @staticmethod
    def forward(ctx, x, axes=(-1,), eps=1e-5):
        xp = get_array_module(x)
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        invstd = 1.0 / xp.sqrt((centred * centred).mean(axis=axes, keepdims=True) + eps)
        xhat = centred * invstd
        ctx.save_for_backward(xhat, invstd)
        ctx.axes = axes
        return xhat

    @staticmethod
    def backward(ctx, g):
        # d xhat/dx: invstd * (g - mean(g) - xhat * mean(g * xhat)) over the axes
        xhat, invstd = ctx.saved
        axes = ctx.axes
        return invstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
