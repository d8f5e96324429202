"""Window ops for the geometries the compiled kernels do not serve: grouped /
dilated / asymmetrically padded convolution, padded / dilated / ceil-mode
pooling, adaptive pooling, and separable resampling (interpolate)."""
from __future__ import annotations

from ..core.backend import get_array_module
from ..core.function import Function
from ..kernels import window_reference as wr


class Conv2dGeneral(Function):
    """y = conv2d(x, w) + b with groups, dilation and (top, bottom, left, right) padding."""

    @staticmethod
    def forward(ctx, x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        ctx.save_for_backward(x, w)
        ctx.geometry = (stride, pads, dilation, groups)
        return wr.conv2d_general_forward(x, w, b, stride, pads, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        # dx = conv_transpose(g, w); dw = g (x) windows(x); db = sum g
        x, w = ctx.saved
        return wr.conv2d_general_backward(g, x, w, *ctx.geometry, ctx.needs_input_grad)


class MaxPool2dGeneral(Function):
    """Max over dilated windows of the -inf-padded input."""

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), dilation=(1, 1)):
        y, ctx.arg = wr.max_pool2d_general_forward(x, kernel, stride, pads, dilation)
        ctx.geometry = (x.shape, kernel, stride, pads, dilation)
        return y

    @staticmethod
    def backward(ctx, g):
        # d max: the gradient goes to the window's argmax only
        return wr.max_pool2d_general_backward(g, ctx.arg, *ctx.geometry)


class AvgPool2dGeneral(Function):
    """Window sums of the zero-padded input over a per-cell divisor."""

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), padding=(0, 0),
                count_include_pad=True):
        xp = get_array_module(x)
        div = wr.avg_pool_divisor(x.shape, kernel, stride, pads, padding, count_include_pad, xp, x.dtype)
        ctx.geometry = (x.shape, kernel, stride, pads, div)
        return wr.avg_pool2d_general_forward(x, kernel, stride, pads, div)

    @staticmethod
    def backward(ctx, g):
        # d mean: g / divisor spread over the window
        return wr.avg_pool2d_general_backward(g, *ctx.geometry)


class AdaptivePool2d(Function):
    """Mean or max over PyTorch's adaptive bins."""

    @staticmethod
    def forward(ctx, x, out=(1, 1), mode="avg"):
        y, ctx.arg = wr.adaptive_pool2d_forward(x, out, mode)
        ctx.geometry = (x.shape, mode)
        return y

    @staticmethod
    def backward(ctx, g):
        # avg: g / bin area over the bin; max: g to the bin's argmax
        shape, mode = ctx.geometry
        return wr.adaptive_pool2d_backward(g, ctx.arg, shape, mode)


class Resample2d(Function):
    """y[n, c] = A_h @ x[n, c] @ A_w.T: nearest and bilinear interpolation as two
    small matrices (one row of weights per output row / column)."""

    @staticmethod
    def forward(ctx, x, a_h=None, a_w=None):
        xp = get_array_module(x)
        ctx.save_for_backward(a_h, a_w)
        return xp.matmul(xp.matmul(a_h, x), a_w.T)

    @staticmethod
    def backward(ctx, g):
        # dx = A_h.T @ g @ A_w
        a_h, a_w = ctx.saved
        xp = get_array_module(g)
        return xp.matmul(xp.matmul(a_h.T, g), a_w)
