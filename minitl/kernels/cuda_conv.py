"""CUDA kernels of the window ops: fused conv2d, conv2d + activation + max-pool,
max/avg pooling, with the reference signatures (see :mod:`minitl.kernels.cuda`).
"""
from __future__ import annotations

from . import cuda_base as base
from . import reference
from .cuda_base import (act_code, check_int32, contig, dtype_code, empty, on_device, pair, ptr,
                        shape_error, stream)


# -------------------------------------------------------------------- conv2d
def _conv_geom(name, x_shape, w_shape, stride, padding):
    """The kernels' 13-int geometry from the shapes (no array is touched)."""
    x_shape, w_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in w_shape)
    if len(x_shape) != 4 or len(w_shape) != 4 or x_shape[1] != w_shape[1]:
        raise shape_error(name, x=x_shape, w=w_shape)
    n, c, h, wd = x_shape
    o, _, kh, kw = w_shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    if sh < 1 or sw < 1 or ph < 0 or pw < 0 or kh < 1 or kw < 1 or kh > 32767 or kw > 32767:
        raise ValueError(f"{name}: bad geometry w={w_shape} stride={stride} "
                         f"padding={padding}")
    oh = reference.conv_output_size(h, kh, sh, ph)
    ow = reference.conv_output_size(wd, kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: kernel {(kh, kw)} larger than padded input "
                         f"x={x_shape} with padding={(ph, pw)}")
    # Largest int offsets the kernels form: (c*H + i)*W + j over the input
    # sample (i < kh, j < kw may overhang it when padded), the output sample,
    # and the weights. Every other 32-bit index is bounded by one of these.
    check_int32(name, {"x": x_shape, "w": w_shape},
                 ("one input sample's extent, (C*H + kh)*W + kw,",
                  (c * h + kh) * wd + kw),
                 ("one output sample, O*OH*OW,", o * oh * ow),
                 ("the weight's size", o * c * kh * kw), ("the batch size", n))
    return (n, c, h, wd, o, kh, kw, sh, sw, ph, pw, oh, ow)


@on_device
def conv2d_forward(x, w, b, stride, padding, activation):
    """y = act(conv2d(x, w) + b); x (N, C, H, W), w (O, C, kh, kw)."""
    x, w, b = contig(x, w, b)
    g = _conv_geom("conv2d_forward", x.shape, w.shape, stride, padding)
    if b is not None and b.shape != (w.shape[0],):
        raise shape_error("conv2d_forward", w=w, b=b)
    dt = dtype_code("conv2d_forward", x, w, b)
    y = empty((g[0], g[4], g[11], g[12]), x.dtype)
    base._C.conv2d_forward(ptr(x), ptr(w), ptr(b), ptr(y), g,
                      act_code("conv2d_forward", activation), dt, stream(), x.device.id)
    return y


@on_device
def conv2d_backward(gy, x, w, y, stride, padding, activation, needs=(True, True, True),
                    _pool=None):
    """Gradients (dx, dw, db) of the fused conv2d; None where not needed.

    ``_pool=(indices, (ph, pw))`` makes it conv2d_pool's backward: ``gy`` and
    ``y`` are then pooled and the kernel routes them through ``indices``.
    """
    act = act_code("conv2d_backward", activation)
    gy, x, w, y = contig(gy, x, w, y if act else None)
    g = _conv_geom("conv2d_backward", x.shape, w.shape, stride, padding)
    yshape, idx, (ph, pw) = (g[0], g[4], g[11], g[12]), None, (0, 0)
    if _pool is not None:
        (ph, pw) = _pool[1]
        idx = base._cp.ascontiguousarray(_pool[0], dtype=base._cp.int64)
        yshape = (g[0], g[4], g[11] // max(ph, 1), g[12] // max(pw, 1))
        if idx.shape != yshape or ph < 1 or pw < 1:
            raise shape_error("conv2d_pool_backward", gy=gy, indices=idx, x=x, w=w)
    if gy.shape != yshape or (y is not None and y.shape != yshape):
        raise shape_error("conv2d_backward", gy=gy, x=x, w=w, y=y)
    dt = dtype_code("conv2d_backward", gy, x, w, y)
    dx = empty(x.shape, x.dtype) if needs[0] else None
    dw = empty(w.shape, x.dtype) if needs[1] else None
    db = empty((w.shape[0],), x.dtype) if needs[2] else None
    ws, splits = None, 1
    if dw is not None or db is not None:
        splits = base._SPLITS or base._C.conv2d_backward_splits(g, x.device.id)
        if splits > 1:  # per-split partial sums, reduced by a second kernel
            ws = base._cp.empty(splits * (w.size + w.shape[0]), dtype=x.dtype)
    if dx is not None or dw is not None or db is not None:
        base._C.conv2d_backward(ptr(gy), ptr(x), ptr(w), ptr(y), ptr(dx), ptr(dw), ptr(db),
                           ptr(ws), splits, g, act, dt, stream(), x.device.id, ptr(idx),
                           ph, pw)
    return dx, dw, db


# ------------------------------------------- conv2d + activation + max-pool
@on_device
def conv2d_pool_forward(x, w, b, stride, padding, activation, pool=(2, 2)):
    """(y, indices): act(max_pool(conv2d(x, w) + b)) over non-overlapping ``pool`` windows."""
    x, w, b = contig(x, w, b)
    g = _conv_geom("conv2d_pool_forward", x.shape, w.shape, stride, padding)
    (pool_h, pool_w), act = pair(pool), act_code("conv2d_pool_forward", activation)
    qh, qw = g[11] // max(pool_h, 1), g[12] // max(pool_w, 1)
    if pool_h < 1 or pool_w < 1 or qh < 1 or qw < 1:
        raise ValueError(f"conv2d_pool_forward: pool {pool} does not fit the conv output "
                         f"{(g[11], g[12])} of x={tuple(x.shape)}")
    if pool_h * pool_w > 4:  # beyond the fused kernel: conv, then pool, then activation
        z = conv2d_forward(x, w, b, stride, padding, None)
        zp, idx = max_pool2d_forward(z, (pool_h, pool_w), (pool_h, pool_w))
        return reference.activation_forward(zp, activation), idx
    dt = dtype_code("conv2d_pool_forward", x, w, b)
    y = empty((g[0], g[4], qh, qw), x.dtype)
    idx = empty(y.shape, base._cp.int64)
    base._C.conv2d_pool_forward(ptr(x), ptr(w), ptr(b), ptr(y), ptr(idx), g, act, pool_h,
                           pool_w, dt, stream(), x.device.id)
    return y, idx


def conv2d_pool_backward(gy, x, w, y, indices, stride, padding, activation, pool=(2, 2),
                         needs=(True, True, True)):
    """Gradients (dx, dw, db) of :func:`conv2d_pool_forward`; None where not needed."""
    return conv2d_backward(gy, x, w, y, stride, padding, activation, needs,
                           _pool=(indices, pair(pool)))


# ------------------------------------------------------------------- pooling
def _pool_geom(name, x_shape, kernel_size, stride):
    if len(x_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D input shape, got {tuple(x_shape)}")
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride)
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or kh > h or kw > w:
        raise ValueError(f"{name}: bad window kernel_size={kernel_size} stride={stride} "
                         f"for input {tuple(x_shape)}")
    # Planes are indexed with 32-bit ints (indices are int64 h*W + w), planes
    # across the batch with 64-bit ones.
    check_int32(name, {"x": (n, c, h, w)}, ("one input plane, H*W,", h * w),
                 ("the batch size", n), ("the channel count", c))
    return (n, c, h, w, c, kh, kw, sh, sw, 0, 0, (h - kh) // sh + 1, (w - kw) // sw + 1)


@on_device
def max_pool2d_forward(x, kernel_size, stride):
    """Max over each window; returns (y, indices), int64 flat h*W + w into each plane."""
    (x,) = contig(x)
    g = _pool_geom("max_pool2d_forward", x.shape, kernel_size, stride)
    dt = dtype_code("max_pool2d_forward", x)
    y = empty((g[0], g[1], g[11], g[12]), x.dtype)
    idx = empty(y.shape, base._cp.int64)
    base._C.max_pool2d_forward(ptr(x), ptr(y), ptr(idx), g, dt, stream(), x.device.id)
    return y, idx


@on_device
def max_pool2d_backward(gy, indices, x_shape, kernel_size, stride):
    """Route each output gradient to the input element that was the maximum."""
    (gy,) = contig(gy)
    indices = base._cp.ascontiguousarray(indices, dtype=base._cp.int64)
    g = _pool_geom("max_pool2d_backward", x_shape, kernel_size, stride)
    if gy.shape != (g[0], g[1], g[11], g[12]) or indices.shape != gy.shape:
        raise shape_error("max_pool2d_backward", gy=gy, indices=indices, x_shape=x_shape)
    dt = dtype_code("max_pool2d_backward", gy)
    dx = empty(tuple(x_shape), gy.dtype)
    base._C.max_pool2d_backward(ptr(gy), ptr(indices), ptr(dx), g, dt, stream(), gy.device.id)
    return dx


@on_device
def avg_pool2d_forward(x, kernel_size, stride):
    """Mean over each window."""
    (x,) = contig(x)
    g = _pool_geom("avg_pool2d_forward", x.shape, kernel_size, stride)
    dt = dtype_code("avg_pool2d_forward", x)
    y = empty((g[0], g[1], g[11], g[12]), x.dtype)
    base._C.avg_pool2d_forward(ptr(x), ptr(y), g, dt, stream(), x.device.id)
    return y


@on_device
def avg_pool2d_backward(gy, x_shape, kernel_size, stride):
    """Spread each output gradient evenly over its window."""
    (gy,) = contig(gy)
    g = _pool_geom("avg_pool2d_backward", x_shape, kernel_size, stride)
    if gy.shape != (g[0], g[1], g[11], g[12]):
        raise shape_error("avg_pool2d_backward", gy=gy, x_shape=x_shape)
    dt = dtype_code("avg_pool2d_backward", gy)
    dx = empty(tuple(x_shape), gy.dtype)
    base._C.avg_pool2d_backward(ptr(gy), ptr(dx), g, dt, stream(), gy.device.id)
    return dx


