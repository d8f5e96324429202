"""Reference BatchNorm kernels (NumPy/CuPy): the oracle for native twins.

Layout: ``x`` is (N, C, *spatial); statistics are per channel over every
other axis (M = N * prod(spatial) values each). ``weight``/``bias`` may be
None (``affine=False``: scale 1, shift 0).
"""
from __future__ import annotations

from ..core.backend import get_array_module


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast against (N, C, *spatial)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, factor, eps):
    """``(y, mean, invstd)``.

    ``training``: normalise with the batch statistics and, when the running
    buffers are given, update them in place with ``factor`` (PyTorch's
    exponential-average factor) using the *unbiased* batch variance.
    Otherwise normalise with the running statistics.
    """
    xp = get_array_module(x)
    if training:
        axes = _axes(x)
        m = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = ((x - _per_channel(mean, x.ndim)) ** 2).mean(axis=axes)
        if running_mean is not None:
            # r <- (1 - f) r + f * stat, in place so that optimizers/audits keep one array.
            running_mean *= 1 - factor
            running_mean += factor * mean
            running_var *= 1 - factor
            running_var += factor * var * (m / (m - 1))
    else:
        mean, var = running_mean, running_var
    invstd = 1.0 / xp.sqrt(var + eps)
    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    y = x * _per_channel(scale.astype(x.dtype, copy=False), x.ndim)
    y += _per_channel(shift.astype(x.dtype, copy=False), x.ndim)
    return y, mean.astype(x.dtype, copy=False), invstd.astype(x.dtype, copy=False)


def batch_norm_backward(gy, x, weight, mean, invstd, training, needs=(True, True, True)):
    """Gradients ``(dx, dweight, dbias)``; None where not needed (or no affine)."""
    axes = _axes(x)
    nd = x.ndim
    xhat = (x - _per_channel(mean, nd)) * _per_channel(invstd, nd)
    dw = (gy * xhat).sum(axis=axes) if needs[1] else None
    db = gy.sum(axis=axes) if needs[2] else None
    dx = None
    if needs[0]:
        scale = invstd if weight is None else invstd * weight
        if training:
            # d xhat-normalisation: (scale / M) * (M g - sum g - xhat * sum(g xhat))
            m = x.size // x.shape[1]
            sum_g = gy.sum(axis=axes) if db is None else db
            sum_gx = (gy * xhat).sum(axis=axes) if dw is None else dw
            dx = gy - _per_channel(sum_g / m, nd) - xhat * _per_channel(sum_gx / m, nd)
            dx *= _per_channel(scale, nd)
        else:
            # eval: y = x * scale + shift, so dx = g * scale
            dx = gy * _per_channel(scale, nd)
    return dx, dw, db
