"""Reference kernels for the general window geometries: grouped and dilated
convolution with any (even asymmetric) zero padding, padded / dilated /
ceil-mode max and average pooling, and adaptive pooling.

The compiled kernels serve the common geometries (groups=1, dilation=1,
symmetric padding); the functional layer routes every other geometry here.
Padding is ``(top, bottom, left, right)``; windows are strided views, and the
adjoint of "take every window" is one strided add per kernel offset.
"""
from __future__ import annotations

from ..core.backend import get_array_module


def pad4(x, pads, value=0.0):
    """``x`` (N, C, H, W) padded by ``(top, bottom, left, right)`` with ``value``."""
    t, b, l, r = pads
    if not (t or b or l or r):
        return x
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def window_output_size(size, kernel, stride, pad_lo, pad_hi, dilation):
    """Output length along one axis for a window of ``kernel`` taps spaced ``dilation``."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def windows(xpad, kernel, stride, dilation, out):
    """A strided view (N, C, OH, OW, kh, kw) of every (dilated) window; no copy."""
    xp = get_array_module(xpad)
    n, c = xpad.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    s0, s1, s2, s3 = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2 * dh, s3 * dw))


def scatter_windows(cols, padded_hw, stride, dilation):
    """Adjoint of :func:`windows`: add (N, C, OH, OW, kh, kw) back into (N, C, Hp, Wp)."""
    xp = get_array_module(cols)
    n, c, oh, ow, kh, kw = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = xp.zeros((n, c) + tuple(padded_hw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw] += \
                cols[:, :, :, :, i, j]
    return out


def _crop(xpad, pads, hw):
    t, _, l, _ = pads
    return xpad[:, :, t: t + hw[0], l: l + hw[1]]


def _out(x_shape, kernel, stride, pads, dilation):
    return (window_output_size(x_shape[2], kernel[0], stride[0], pads[0], pads[1], dilation[0]),
            window_output_size(x_shape[3], kernel[1], stride[1], pads[2], pads[3], dilation[1]))


# ------------------------------------------------------------- convolution
def _group_cols(win, g, cg):
    """Columns (N*OH*OW, cg*kh*kw) of group ``g``'s input channels."""
    n, _, oh, ow, kh, kw = win.shape
    return win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, cg * kh * kw)


def conv2d_general_forward(x, w, b, stride, pads, dilation, groups):
    """y = conv2d(x, w) + b; w (O, C/groups, kh, kw), pads (top, bottom, left, right)."""
    xp = get_array_module(x)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    og = o // groups
    out = _out(x.shape, (kh, kw), stride, pads, dilation)
    win = windows(pad4(x, pads), (kh, kw), stride, dilation, out)
    y = xp.empty((n * out[0] * out[1], o), dtype=x.dtype)
    for g in range(groups):
        y[:, g * og:(g + 1) * og] = _group_cols(win, g, cg) @ w[g * og:(g + 1) * og].reshape(og, -1).T
    if b is not None:
        y += b
    return y.reshape(n, out[0], out[1], o).transpose(0, 3, 1, 2).copy()


def conv2d_general_backward(gy, x, w, stride, pads, dilation, groups, needs=(True, True, True)):
    """Gradients (dx, dw, db) of :func:`conv2d_general_forward`; None where not needed."""
    xp = get_array_module(gy)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    oh, ow = gy.shape[2:]
    gz = gy.transpose(0, 2, 3, 1).reshape(-1, o)
    win = windows(pad4(x, pads), (kh, kw), stride, dilation, (oh, ow)) if needs[1] else None
    dx = dw = db = None
    if needs[1]:
        dw = xp.empty_like(w)
        for g in range(groups):
            dw[g * og:(g + 1) * og] = (gz[:, g * og:(g + 1) * og].T @ _group_cols(win, g, cg)).reshape(og, cg, kh, kw)
    if needs[2]:
        db = gz.sum(axis=0)
    if needs[0]:
        dcols = xp.empty((n, c, oh, ow, kh, kw), dtype=gy.dtype)
        for g in range(groups):
            part = gz[:, g * og:(g + 1) * og] @ w[g * og:(g + 1) * og].reshape(og, -1)
            dcols[:, g * cg:(g + 1) * cg] = part.reshape(n, oh, ow, cg, kh, kw).transpose(0, 3, 1, 2, 4, 5)
        padded = (h + pads[0] + pads[1], wd + pads[2] + pads[3])
        dx = _crop(scatter_windows(dcols, padded, stride, dilation), pads, (h, wd)).copy()
    return dx, dw, db


# ----------------------------------------------------------------- pooling
def max_pool2d_general_forward(x, kernel, stride, pads, dilation):
    """Max over dilated windows of ``x`` padded with -inf; returns (y, window-local argmax)."""
    xp = get_array_module(x)
    out = _out(x.shape, kernel, stride, pads, dilation)
    win = windows(pad4(x, pads, value=-xp.inf), kernel, stride, dilation, out)
    flat = win.reshape(win.shape[:4] + (-1,))
    arg = flat.argmax(axis=-1)  # NaN is the max (argmax stops at the first NaN): NaN propagates
    return xp.take_along_axis(flat, arg[..., None], axis=-1)[..., 0], arg


def max_pool2d_general_backward(gy, arg, x_shape, kernel, stride, pads, dilation):
    """Route each output gradient to its window's maximum."""
    xp = get_array_module(gy)
    kk = kernel[0] * kernel[1]
    cols = xp.zeros(gy.shape + (kk,), dtype=gy.dtype)
    xp.put_along_axis(cols, arg[..., None], gy[..., None], axis=-1)
    padded = (x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3])
    dxp = scatter_windows(cols.reshape(gy.shape + tuple(kernel)), padded, stride, dilation)
    return _crop(dxp, pads, x_shape[2:]).copy()


def avg_pool_divisor(x_shape, kernel, stride, pads, padding, count_include_pad, xp, dtype):
    """(OH, OW) divisors, PyTorch's rule: the window clipped to the symmetric
    ``padding`` (count_include_pad) or to the real input (otherwise); the extra
    bottom/right cells that ceil_mode adds never count."""
    h, w = x_shape[2:]
    ones = xp.zeros((1, 1, h + pads[0] + pads[1], w + pads[2] + pads[3]), dtype=dtype)
    if count_include_pad:
        ones[:, :, :h + 2 * padding[0], :w + 2 * padding[1]] = 1
    else:
        ones[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = 1
    out = _out(x_shape, kernel, stride, pads, (1, 1))
    return windows(ones, kernel, stride, (1, 1), out).sum(axis=(4, 5))[0, 0]


def avg_pool2d_general_forward(x, kernel, stride, pads, divisor):
    """Window sums of the zero-padded input over ``divisor`` (from :func:`avg_pool_divisor`)."""
    out = _out(x.shape, kernel, stride, pads, (1, 1))
    return windows(pad4(x, pads), kernel, stride, (1, 1), out).sum(axis=(4, 5)) / divisor


def avg_pool2d_general_backward(gy, x_shape, kernel, stride, pads, divisor):
    """Spread each output gradient over its window, divided as in forward."""
    xp = get_array_module(gy)
    cols = xp.broadcast_to((gy / divisor)[..., None, None], gy.shape + tuple(kernel))
    padded = (x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3])
    return _crop(scatter_windows(cols, padded, stride, (1, 1)), pads, x_shape[2:]).copy()


# ---------------------------------------------------------- adaptive pooling
def adaptive_bins(size, out):
    """PyTorch's adaptive bins along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_pool2d_forward(x, out, mode):
    """Mean or max over adaptive bins; returns (y, argmax per cell or None)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    if (h % out[0], w % out[1]) == (0, 0) and mode == "avg":
        # Equal bins: one reshape and a mean (the ResNet head's global pooling).
        return x.reshape(n, c, out[0], h // out[0], out[1], w // out[1]).mean(axis=(3, 5)), None
    y = xp.empty((n, c) + tuple(out), dtype=x.dtype)
    arg = xp.empty((n, c) + tuple(out), dtype=xp.int64) if mode == "max" else None
    for i, (h0, h1) in enumerate(adaptive_bins(h, out[0])):
        for j, (w0, w1) in enumerate(adaptive_bins(w, out[1])):
            cell = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            if mode == "max":
                k = cell.argmax(axis=-1)
                arg[:, :, i, j] = (h0 + k // (w1 - w0)) * w + w0 + k % (w1 - w0)
                y[:, :, i, j] = xp.take_along_axis(cell, k[..., None], axis=-1)[..., 0]
            else:
                y[:, :, i, j] = cell.mean(axis=-1)
    return y, arg


def adaptive_pool2d_backward(gy, arg, x_shape, mode):
    """Gradient of :func:`adaptive_pool2d_forward`."""
    xp = get_array_module(gy)
    n, c, h, w = x_shape
    oh, ow = gy.shape[2:]
    if mode == "max":
        dx = xp.zeros((n, c, h * w), dtype=gy.dtype)
        flat_g, flat_i = gy.reshape(n, c, -1), arg.reshape(n, c, -1)
        for k in range(flat_g.shape[-1]):  # one cell at a time: bins may overlap
            rows = flat_i[:, :, k:k + 1]
            xp.put_along_axis(dx, rows, xp.take_along_axis(dx, rows, axis=-1) + flat_g[:, :, k:k + 1], axis=-1)
        return dx.reshape(x_shape)
    if (h % oh, w % ow) == (0, 0):
        g = gy[:, :, :, None, :, None] / ((h // oh) * (w // ow))
        return xp.broadcast_to(g, (n, c, oh, h // oh, ow, w // ow)).reshape(x_shape).copy()
    dx = xp.zeros(x_shape, dtype=gy.dtype)
    for i, (h0, h1) in enumerate(adaptive_bins(h, oh)):
        for j, (w0, w1) in enumerate(adaptive_bins(w, ow)):
            dx[:, :, h0:h1, w0:w1] += gy[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return dx
