"""A run of fused Linear(+activation) layers as one graph node.

``Sequential`` hands a chain such as ``Linear -> ReLU -> Linear -> ReLU`` to
:class:`LinearChain`: forward calls the same ``linear_forward`` kernel per
layer as :class:`minitl.ops.fused.Linear` would, on raw arrays, and records a
single node whose backward calls ``linear_backward`` per layer in reverse. The
numbers are those of the unfused chain, bit for bit (same kernels, same
inputs, same order); what goes is one ``Tensor``, one ``Context`` and one
backward-walk step per layer. :func:`linear_chain_infer` is the no-graph twin
for inference.

Where a weight's (or bias's) ``.grad`` is already an array the engine adds
into (``zero_grad(set_to_none=False)``, or gradients accumulated over several
backward calls), the layer's kernel adds dw and db straight into it
(``linear_backward_acc``) instead of returning fresh arrays for the walk to
add: one pass over each gradient less, the same sums bit for bit.
"""
from __future__ import annotations

from .. import kernels
from ..core.autograd import ACCUMULATED
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

    adds_into_grads = True

    @staticmethod
    def forward(ctx, x, *params, activations=()):
        ctx.device = device = device_of(x)
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
        buffers = getattr(ctx, "grad_buffers", None)  # the .grad arrays to add into, if any
        acc = None
        if buffers is not None and any(b is not None for b in buffers):
            acc = kernels.get_beside("linear_backward_acc", "linear_backward", ctx.device)
        for i in range(len(ctx.activations) - 1, -1, -1):
            x, w, y = ctx.saved[i]
            layer_needs = (wants_input[i], needs[1 + 2 * i], needs[2 + 2 * i])
            into_w, into_b = (buffers[1 + 2 * i], buffers[2 + 2 * i]) if acc is not None else (None, None)
            if into_w is None and into_b is None:
                dx, grads[1 + 2 * i], grads[2 + 2 * i] = ctx.bwd(g, x, w, y, ctx.activations[i], layer_needs)
            else:  # (dx, dw, db) with dw and db added into their .grad where it is ours to add into
                dx, dw, db = acc(g, x, w, y, ctx.activations[i], layer_needs, into_w, into_b)
                grads[1 + 2 * i] = ACCUMULATED if into_w is not None and dw is not None else dw
                grads[2 + 2 * i] = ACCUMULATED if into_b is not None and db is not None else db
            if not wants_input[i]:
                break
            g = dx
        else:
            grads[0] = g
        return tuple(grads)
