"""Convolution and pooling in the geometries beyond the fused kernels' reach
(groups, dilation, ``padding='same'``, padded / ceil-mode pooling), adaptive
pooling and ``interpolate``. ``functional.conv2d`` / ``max_pool2d`` /
``avg_pool2d`` route here when an argument leaves the fast path; every
function checks its arguments and names the problem."""
from __future__ import annotations

import math

import numpy as np

from ..core.backend import xp_for
from ..core.tensor import Tensor
from ..ops.window import AdaptivePool2d, AvgPool2dGeneral, Conv2dGeneral, MaxPool2dGeneral, Resample2d
from .args import pair, where


def conv_padding(padding, kernel, dilation, stride, layer=""):
    """``(top, bottom, left, right)`` from an int, a pair, ``'valid'`` or ``'same'``
    (``'same'`` puts the odd pixel at the bottom/right, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{where(layer)}padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{where(layer)}padding='same' needs stride 1, got stride {stride}")
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ValueError(f"{where(layer)}padding must be >= 0, got {(ph, pw)}")
    return (ph, ph, pw, pw)


def conv2d_general(x: Tensor, weight: Tensor, bias=None, stride=(1, 1), padding=0, dilation=(1, 1), groups=1,
                   layer: str = ""):
    """conv2d with ``groups``, ``dilation`` and any padding (no fused activation)."""
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    if x.ndim != 4:
        raise ValueError(f"{where(layer)}conv2d expects input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{where(layer)}conv2d weight must be (O, C/groups, kh, kw), got shape {weight.shape}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{where(layer)}groups must be a positive int, got {groups!r}")
    o, cg, kh, kw = weight.shape
    if x.shape[1] % groups or o % groups:
        raise ValueError(f"{where(layer)}groups={groups} must divide the input channels ({x.shape[1]}) "
                         f"and the output channels ({o})")
    if x.shape[1] // groups != cg:
        raise ValueError(f"{where(layer)}conv2d expects {cg * groups} input channels (weight {weight.shape}, "
                         f"groups={groups}), got input of shape {x.shape}")
    if bias is not None and bias.shape != (o,):
        raise ValueError(f"{where(layer)}conv2d bias must have shape {(o,)}, got {bias.shape}")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{where(layer)}conv2d needs stride >= 1 and dilation >= 1, got {stride}, {dilation}")
    pads = conv_padding(padding, (kh, kw), dilation, stride, layer)
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if x.shape[2] + pads[0] + pads[1] < eh or x.shape[3] + pads[2] + pads[3] < ew:
        raise ValueError(f"{where(layer)}conv2d kernel {(kh, kw)} (dilation {dilation}) with padding {padding} "
                         f"does not fit input of shape {x.shape}")
    return Conv2dGeneral.apply(x, weight, bias, stride=stride, pads=pads, dilation=dilation, groups=groups)


def pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, name):
    """Checked ``(kernel, stride, padding, pads)`` of a pooling call, where ``pads`` is
    (top, bottom, left, right) with the extra bottom/right cells ceil_mode needs."""
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    if x.ndim != 4:
        raise ValueError(f"{name} expects input (N, C, H, W), got shape {x.shape}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{name} needs kernel_size, stride, dilation >= 1 and padding >= 0, got "
                         f"{kernel}, {stride}, {dilation}, {padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel size {kernel}")
    out, extra = [], []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        o = (size + 2 * p - span + ((s - 1) if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= size + p:  # the last window must start inside the input or padding
            o -= 1
        if o < 1:
            raise ValueError(f"{name} window {kernel} (dilation {dilation}, padding {padding}) does not fit "
                             f"the input of shape {x.shape}")
        out.append(o)
        extra.append(max(0, (o - 1) * s + span - (size + 2 * p)))
    pads = (padding[0], padding[0] + extra[0], padding[1], padding[1] + extra[1])
    return kernel, stride, padding, dilation, pads


def max_pool2d_general(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling with -inf padding, dilation and ceil_mode (PyTorch's output sizes)."""
    kernel, stride, _, dilation, pads = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                                                      "max_pool2d")
    return MaxPool2dGeneral.apply(x, kernel=kernel, stride=stride, pads=pads, dilation=dilation)


def avg_pool2d_general(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling with zero padding, ceil_mode and PyTorch's divisor rule."""
    kernel, stride, padding, _, pads = pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    return AvgPool2dGeneral.apply(x, kernel=kernel, stride=stride, pads=pads, padding=padding,
                                  count_include_pad=bool(count_include_pad))


def _adaptive_size(x, output_size, name):
    if x.ndim != 4:
        raise ValueError(f"{name} expects input (N, C, H, W), got shape {x.shape}")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    if len(out) != 2 or any(not isinstance(s, int) or s < 1 for s in out):
        raise ValueError(f"{name}: output_size must be an int or a pair of positive ints (or None), "
                         f"got {output_size!r}")
    return out


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Mean over PyTorch's adaptive bins; ``output_size=1`` is global average pooling."""
    return AdaptivePool2d.apply(x, out=_adaptive_size(x, output_size, "adaptive_avg_pool2d"), mode="avg")


def adaptive_max_pool2d(x: Tensor, output_size) -> Tensor:
    """Max over PyTorch's adaptive bins."""
    return AdaptivePool2d.apply(x, out=_adaptive_size(x, output_size, "adaptive_max_pool2d"), mode="max")


INTERPOLATE_MODES = ("nearest", "bilinear")


def _resample_matrix(size_in, size_out, mode, align_corners, scale):
    """(size_out, size_in) float64 weights of one axis (PyTorch's source-index rules)."""
    a = np.zeros((size_out, size_in))
    dst = np.arange(size_out)
    if mode == "nearest":
        # src = floor(dst * scale), scale = in/out (or 1/scale_factor when given)
        src = np.minimum(np.floor(dst * scale).astype(np.int64), size_in - 1)
        a[dst, src] = 1.0
        return a
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1)) if size_out > 1 else np.zeros(size_out)
    else:
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    frac = src - i0
    np.add.at(a, (dst, i0), 1.0 - frac)
    np.add.at(a, (dst, i1), frac)
    return a


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    """Resize (N, C, H, W) to ``size`` or by ``scale_factor``: ``'nearest'`` or
    ``'bilinear'`` (``align_corners`` as in PyTorch, default False)."""
    if mode not in INTERPOLATE_MODES:
        raise ValueError(f"interpolate: mode must be one of {INTERPOLATE_MODES}, got {mode!r}")
    if x.ndim != 4:
        raise ValueError(f"interpolate expects input (N, C, H, W), got shape {x.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to mode='bilinear'")
    h, w = x.shape[2:]
    if size is not None:
        out = pair(size, "size")
        scales = (h / out[0], w / out[1])
    else:
        sf = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(sf) != 2 or min(sf) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive (one or two numbers), got {scale_factor!r}")
        out = (int(math.floor(h * sf[0])), int(math.floor(w * sf[1])))
        scales = (1.0 / sf[0], 1.0 / sf[1])
    if min(out) < 1:
        raise ValueError(f"interpolate: output size {out} must be at least 1x1")
    xp = xp_for(x.device)
    a_h, a_w = (xp.asarray(_resample_matrix(n, o, mode, bool(align_corners), s).astype(x.dtype))
                for n, o, s in ((h, out[0], scales[0]), (w, out[1], scales[1])))
    return Resample2d.apply(x, a_h=a_h, a_w=a_w)
