"""CUDA kernels of the dense ops: fused linear (+ bias + activation) and softmax
cross-entropy, with the reference signatures (see :mod:`minitl.kernels.cuda`).
"""
from __future__ import annotations

from . import cuda_base as base
from .cuda_base import (act_code, check_int32, contig, dtype_code, empty, on_device, ptr, shape_error,
                        stream)


# -------------------------------------------------------------------- linear
@on_device
def linear_forward(x, w, b, activation):
    """y = act(x @ w.T + b); x (N, in), w (out, in), b (out,) or None."""
    x, w, b = contig(x, w, b)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or (
            b is not None and b.shape != (w.shape[0],)):
        raise shape_error("linear_forward", x=x, w=w, b=b)
    dt = dtype_code("linear_forward", x, w, b)
    n, k = x.shape
    check_int32("linear_forward", {"x": x.shape, "w": w.shape}, ("the row count", n),
                 ("the feature count", max(k, w.shape[0])))
    y = empty((n, w.shape[0]), x.dtype)
    base._C.linear_forward(ptr(x), ptr(w), ptr(b), ptr(y), n, k, w.shape[0],
                      act_code("linear_forward", activation), dt, stream(), x.device.id)
    return y


@on_device
def linear_backward(gy, x, w, y, activation, needs=(True, True, True)):
    """Gradients (dx, dw, db) of the fused linear; None where not needed."""
    act = act_code("linear_backward", activation)
    gy, x, w, y = contig(gy, x, w, y if act else None)
    if (x.ndim != 2 or w.ndim != 2 or w.shape[1] != x.shape[1]
            or gy.shape != (x.shape[0], w.shape[0]) or (y is not None and y.shape != gy.shape)):
        raise shape_error("linear_backward", gy=gy, x=x, w=w, y=y)
    (n, k), out = x.shape, w.shape[0]
    check_int32("linear_backward", {"x": x.shape, "w": w.shape}, ("the row count", n),
                 ("the feature count", max(k, out)))
    dt = dtype_code("linear_backward", gy, x, w, y)
    dx = empty((n, k), x.dtype) if needs[0] else None
    dw = empty((out, k), x.dtype) if needs[1] else None
    db = empty((out,), x.dtype) if needs[2] else None
    if dx is not None or dw is not None or db is not None:
        base._C.linear_backward(ptr(gy), ptr(x), ptr(w), ptr(y), ptr(dx), ptr(dw), ptr(db),
                           n, k, out, act, dt, stream(), x.device.id)
    return dx, dw, db



# ------------------------------------------------------- softmax cross-entropy
@on_device
def cross_entropy_forward(logits, target, label_smoothing):
    """Per-sample losses (N,) and probabilities (N, C); an out-of-range target gives NaN."""
    (logits,) = contig(logits)
    target = base._cp.ascontiguousarray(target, dtype=base._cp.int64)
    if logits.ndim != 2 or logits.shape[1] < 1 or target.shape != (logits.shape[0],):
        raise shape_error("cross_entropy_forward", logits=logits, target=target)
    dt = dtype_code("cross_entropy_forward", logits)
    n, c = logits.shape
    losses = empty((n,), logits.dtype)
    probs = empty((n, c), logits.dtype)
    base._C.cross_entropy_forward(ptr(logits), ptr(target), ptr(losses), ptr(probs), n, c,
                             float(label_smoothing or 0.0), dt, stream(), logits.device.id)
    return losses, probs


@on_device
def cross_entropy_backward(glosses, probs, target, label_smoothing):
    """d(losses)/d(logits) scaled by the per-sample upstream gradient ``glosses``."""
    glosses, probs = contig(glosses, probs)
    target = base._cp.ascontiguousarray(target, dtype=base._cp.int64)
    if probs.ndim != 2 or target.shape != (probs.shape[0],) or glosses.size != probs.shape[0]:
        raise shape_error("cross_entropy_backward", glosses=glosses, probs=probs,
                           target=target)
    dt = dtype_code("cross_entropy_backward", glosses, probs)
    n, c = probs.shape
    d = empty((n, c), probs.dtype)
    base._C.cross_entropy_backward(ptr(glosses), ptr(probs), ptr(target), ptr(d), n, c,
                              float(label_smoothing or 0.0), dt, stream(), probs.device.id)
    return d


