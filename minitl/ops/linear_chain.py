"""A run of fused Linear(+activation) layers as one graph node.

``Sequential`` hands a chain such as ``Linear -> ReLU -> Linear -> ReLU`` to
:class:`LinearChain`: forward calls the same ``linear_forward`` kernel per
layer as :class:`minitl.ops.fused.Linear` would, on raw arrays, and records a
single node whose backward calls ``linear_backward`` per layer in reverse. The
numbers are those of the unfused chain, bit for bit (same kernels, same
inputs, same order); what goes is one ``Tensor``, one ``Context`` and one
backward-walk step per layer. :func:`linear_chain_infer` is the no-graph twin
for inference.
"""
from __future__ import annotations

from .. import kernels
from ..core.backend import device_of
from ..core.function import Function


def linear_chain_infer(x, layers):
    """act_k(... act_1(x @ w_1.T + b_1) ...) on raw arrays; ``layers`` is
    ``[(w, b or None, activation), ...]``. No graph, no Tensor."""
    fwd = kernels.get("linear_forward", device_of(x))
    for w, b, act in layers:
        x = fwd(x, w, b, act)
    return x


class LinearChain(Function):
    """Inputs ``(x, w_1, b_1, ..., w_k, b_k)`` (a bias may be None);
    ``activations`` one per layer."""

    @staticmethod
    def forward(ctx, x, *params, activations=()):
        device = device_of(x)
        fwd, ctx.bwd = kernels.get("linear_forward", device), kernels.get("linear_backward", device)
        saved = []
        for i, act in enumerate(activations):
            w, b = params[2 * i], params[2 * i + 1]
            y = fwd(x, w, b, act)
            saved.append((x, w, y))
            x = y
        ctx.save_for_backward(*saved)
        ctx.activations = activations
        return x

    @staticmethod
    def backward(ctx, g):
        # per layer, from the last: (dx, dw, db) = linear_backward(g); g <- dx
        needs = ctx.needs_input_grad
        grads = [None] * len(needs)
        # layer i's input needs a gradient when x or any parameter before it does
        wants_input = [needs[0]]
        for i in range(len(ctx.activations) - 1):
            wants_input.append(wants_input[-1] or needs[1 + 2 * i] or needs[2 + 2 * i])
        for i in range(len(ctx.activations) - 1, -1, -1):
            x, w, y = ctx.saved[i]
            layer_needs = (wants_input[i], needs[1 + 2 * i], needs[2 + 2 * i])
            dx, grads[1 + 2 * i], grads[2 + 2 * i] = ctx.bwd(g, x, w, y, ctx.activations[i], layer_needs)
            if not wants_input[i]:
                break
            g = dx
        else:
            grads[0] = g
        return tuple(grads)
