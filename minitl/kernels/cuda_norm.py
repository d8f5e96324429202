"""CUDA BatchNorm kernels (``csrc/cuda/batchnorm.cu``) with the signatures of
:mod:`minitl.kernels.norm_reference`, the twins of ``minitl._C``'s.

``x`` (N, C, *spatial) is float32 or float64; ``weight``, ``bias`` and the
running buffers are (C,) and each float32 or float64 independently of ``x``
(the modules keep float32 buffers); the kernel is told which (a bit per
vector). Train mode updates the running buffers in place on the device (no
host sync), so they must be C-contiguous CuPy arrays on the device of ``x``.
"""
from __future__ import annotations

from . import cuda_base as base
from .cuda_base import contig, dtype_code, empty, in_place_ok, on_device, ptr, stream

# Bit of each per-channel vector in the kernels' ``vec_f64`` mask (minitl_cuda.h, VecBit).
_BITS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3, "mean": 4, "invstd": 5}


def _layout(name: str, x) -> tuple[int, int, int]:
    """(N, C, S) of x viewed as (N, C, prod(spatial)); ValueError for rank < 2."""
    if x.ndim < 2:
        raise ValueError(f"{name}: x must be (N, C) or (N, C, *spatial), got shape {tuple(x.shape)}")
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    return int(x.shape[0]), int(x.shape[1]), s


def _vectors(name: str, c: int, **vectors) -> tuple[dict, int]:
    """The (C,) vectors made contiguous (None kept), and their float64 mask.

    ValueError naming a vector of the wrong shape or of a non-float dtype.
    """
    out, mask = {}, 0
    for key, v in vectors.items():
        if v is None:
            out[key] = None
            continue
        if tuple(v.shape) != (c,):
            raise ValueError(f"{name}: {key} must have shape ({c},) for the channels of x, "
                             f"got {tuple(v.shape)}")
        if v.dtype not in (base._cp.float32, base._cp.float64):
            raise ValueError(f"{name}: {key} must be float32 or float64, got {v.dtype}")
        (out[key],) = contig(v)
        if v.dtype == base._cp.float64:
            mask |= 1 << _BITS[key]
    return out, mask


@on_device
def batch_norm_forward(x, weight, bias, running_mean, running_var, training, factor, eps):
    """``(y, mean, invstd)`` of BatchNorm over x (N, C, *spatial).

    ``training``: batch statistics, and the running buffers (when given)
    updated in place with ``factor`` and the unbiased batch variance; else
    the running statistics.
    """
    name = "batch_norm_forward"
    (x,) = contig(x)
    n, c, s = _layout(name, x)
    dt = dtype_code(name, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{name}: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError(f"{name}: evaluation needs running_mean and running_var")
    if training and n * s < 1:
        raise ValueError(f"{name}: x {tuple(x.shape)} has no values per channel")
    if training and running_mean is not None and n * s < 2:
        raise ValueError(f"{name}: x {tuple(x.shape)} has 1 value per channel; the unbiased "
                         f"variance needs more than 1")
    for key, buf in (("running_mean", running_mean), ("running_var", running_var)):
        if training and buf is not None and not in_place_ok(buf):
            raise ValueError(f"{name}: {key} must be a C-contiguous float32/float64 CuPy array: "
                             f"it is updated in place")
    v, mask = _vectors(name, c, weight=weight, bias=bias, running_mean=running_mean,
                       running_var=running_var)
    y = empty(x.shape, x.dtype)
    mean, invstd = empty((c,), x.dtype), empty((c,), x.dtype)
    base._C.batch_norm_forward(ptr(x), ptr(v["weight"]), ptr(v["bias"]), ptr(v["running_mean"]),
                               ptr(v["running_var"]), ptr(y), ptr(mean), ptr(invstd), n, c, s,
                               mask, bool(training), float(factor), float(eps), dt, stream(),
                               x.device.id)
    return y, mean, invstd


@on_device
def batch_norm_backward(gy, x, weight, mean, invstd, training, needs=(True, True, True)):
    """Gradients ``(dx, dweight, dbias)`` of BatchNorm; None where not needed."""
    name = "batch_norm_backward"
    gy, x = contig(gy, x)
    n, c, s = _layout(name, x)
    if tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"{name}: gy {tuple(gy.shape)} must have the shape of x {tuple(x.shape)}")
    dt = dtype_code(name, gy, x)
    if mean is None or invstd is None:
        raise ValueError(f"{name}: mean and invstd are required")
    v, mask = _vectors(name, c, weight=weight, mean=mean, invstd=invstd)
    dx = empty(x.shape, x.dtype) if needs[0] else None
    dw = empty((c,), x.dtype) if needs[1] else None
    db = empty((c,), x.dtype) if needs[2] else None
    if dx is not None or dw is not None or db is not None:
        base._C.batch_norm_backward(ptr(gy), ptr(x), ptr(v["weight"]), ptr(v["mean"]),
                                    ptr(v["invstd"]), ptr(dx), ptr(dw), ptr(db), n, c, s, mask,
                                    bool(training), dt, stream(), x.device.id)
    return dx, dw, db
