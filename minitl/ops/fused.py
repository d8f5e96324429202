"""Autograd Functions for the fused ops; each calls the kernel dispatch point.

The kernel for backward is chosen at forward time and kept in ``ctx``, so a
forward and its backward always run on the same backend even if the choice
changes in between (``minitl.kernels.use``).
"""
from .. import kernels
from ..kernels.reference import ACTIVATIONS, conv_output_size  # noqa: F401  (re-exported for nn)
from ..core.backend import device_of, get_array_module
from ..core.function import Function


def _kernel_pair(name, array):
    device = device_of(array)
    return kernels.get(f"{name}_forward", device), kernels.get(f"{name}_backward", device)


class Linear(Function):
    """y = act(x @ w.T + b) on 2-D x."""

    @staticmethod
    def forward(ctx, x, w, b, activation=None):
        fwd, ctx.bwd = _kernel_pair("linear", x)
        y = fwd(x, w, b, activation)
        ctx.save_for_backward(x, w, y)
        ctx.activation = activation
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved
        return ctx.bwd(g, x, w, y, ctx.activation, ctx.needs_input_grad)


class Conv2d(Function):
    """y = act(conv2d(x, w) + b)."""

    @staticmethod
    def forward(ctx, x, w, b, stride=(1, 1), padding=(0, 0), activation=None):
        fwd, ctx.bwd = _kernel_pair("conv2d", x)
        y = fwd(x, w, b, stride, padding, activation)
        ctx.save_for_backward(x, w, y)
        ctx.geometry = (stride, padding, activation)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved
        stride, padding, activation = ctx.geometry
        return ctx.bwd(g, x, w, y, stride, padding, activation, ctx.needs_input_grad)


class Conv2dPool(Function):
    """y = act(max_pool2d(conv2d(x, w) + b)) over non-overlapping windows: LeNet's
    Conv2d -> ReLU -> MaxPool2d block as one kernel call (equal in value to the
    unfused chain for the monotone activations)."""

    @staticmethod
    def forward(ctx, x, w, b, stride=(1, 1), padding=(0, 0), activation=None, pool=(2, 2)):
        fwd, ctx.bwd = _kernel_pair("conv2d_pool", x)
        y, ctx.indices = fwd(x, w, b, stride, padding, activation, pool)
        ctx.save_for_backward(x, w, y)
        ctx.geometry = (stride, padding, activation, pool)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved
        stride, padding, activation, pool = ctx.geometry
        return ctx.bwd(g, x, w, y, ctx.indices, stride, padding, activation, pool, ctx.needs_input_grad)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride):
        fwd, ctx.bwd = _kernel_pair("max_pool2d", x)
        y, ctx.indices = fwd(x, kernel_size, stride)
        ctx.geometry = (x.shape, kernel_size, stride)
        return y

    @staticmethod
    def backward(ctx, g):
        return ctx.bwd(g, ctx.indices, *ctx.geometry)


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride):
        fwd, ctx.bwd = _kernel_pair("avg_pool2d", x)
        ctx.geometry = (x.shape, kernel_size, stride)
        return fwd(x, kernel_size, stride)

    @staticmethod
    def backward(ctx, g):
        return ctx.bwd(g, *ctx.geometry)


class CrossEntropy(Function):
    """Per-sample softmax cross-entropy of (N, C) logits against class indices."""

    @staticmethod
    def forward(ctx, logits, target, label_smoothing=0.0):
        fwd, ctx.bwd = _kernel_pair("cross_entropy", logits)
        losses, probs = fwd(logits, target, label_smoothing)
        ctx.save_for_backward(probs, target)
        ctx.label_smoothing = label_smoothing
        return losses

    @staticmethod
    def backward(ctx, g):
        probs, target = ctx.saved
        return ctx.bwd(g, probs, target, ctx.label_smoothing), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = get_array_module(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        # d log_softmax: g - softmax * sum(g)
        (out,) = ctx.saved
        xp = get_array_module(out)
        return g - xp.exp(out) * g.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        # d softmax: s * (g - sum(g * s))
        (s,) = ctx.saved
        return s * (g - (g * s).sum(axis=ctx.axis, keepdims=True))
