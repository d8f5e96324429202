"""Losses and similarity functions with PyTorch's names, arguments and reductions (re-exported by
``nn.functional``): binary cross-entropy (on probabilities and on logits, with ``pos_weight``),
L1, smooth L1, Huber, KL divergence, cosine similarity, ``normalize``, and the general
cross-entropy (class weights, ``ignore_index``, probability targets, extra dims).

They are compositions of differentiable ops, whose backward comes out right; the
plain class-index cross-entropy keeps the fused kernel (``functional.cross_entropy``).
"""
from __future__ import annotations

import numpy as np

from ..core.backend import xp_for
from ..core.tensor import Tensor
from ..ops import activations as A
from ..ops import math_functions as M
from ..ops import reduce_functions as R
from ..ops import shape_functions as S
from ..ops.fused import LogSoftmax

REDUCTIONS = ("mean", "sum", "none")


def reduce(losses: Tensor, reduction: str, op: str) -> Tensor:
    """Apply ``reduction`` ('mean', 'sum' or 'none')."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _pair(input, target, op, same_shape=True) -> tuple:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got dtype {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    elif target.dtype != input.dtype:
        target = target.astype(input.dtype)
    if same_shape and input.shape != target.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")
    return input, target


def _weighted(losses, weight, op):
    if weight is None:
        return losses
    w = weight if isinstance(weight, Tensor) else Tensor(weight, dtype=losses.dtype, device=losses.device)
    try:
        np.broadcast_shapes(w.shape, losses.shape)
    except ValueError:
        raise ValueError(f"{op}: weight of shape {w.shape} does not broadcast to {losses.shape}") from None
    return losses * w


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) of probabilities ``input``; each log is clamped at -100 as PyTorch."""
    p, t = _pair(input, target, "binary_cross_entropy")
    data = p.data
    if data.size and (bool((data < 0).any()) or bool((data > 1).any())):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1] "
                         "(for logits use binary_cross_entropy_with_logits)")
    log_p = M.clamp(M.log(p), min=-100.0)
    log_q = M.clamp(M.log(1 - p), min=-100.0)
    losses = -(t * log_p + (1 - t) * log_q)
    return reduce(_weighted(losses, weight, "binary_cross_entropy"), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula; ``pos_weight`` scales the positive term."""
    x, t = _pair(input, target, "binary_cross_entropy_with_logits")
    # -[pw t log s(x) + (1 - t) log(1 - s(x))] = (1 - t) x + (1 + (pw - 1) t) softplus(-x)
    sp = A.Softplus.apply(-x)
    if pos_weight is None:
        losses = (1 - t) * x + sp
    else:
        pw = pos_weight if isinstance(pos_weight, Tensor) else Tensor(pos_weight, dtype=x.dtype, device=x.device)
        try:
            np.broadcast_shapes(pw.shape, x.shape)
        except ValueError:
            raise ValueError(f"binary_cross_entropy_with_logits: pos_weight of shape {pw.shape} does not "
                             f"broadcast to {x.shape}") from None
        losses = (1 - t) * x + (1 + (pw - 1) * t) * sp
    return reduce(_weighted(losses, weight, "binary_cross_entropy_with_logits"), reduction,
                  "binary_cross_entropy_with_logits")


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """|input - target|."""
    x, t = _pair(input, target, "l1_loss")
    return reduce(M.abs(x - t), reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (L1 when beta = 0)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x, t = _pair(input, target, "smooth_l1_loss")
    d = M.abs(x - t)
    if beta == 0:
        return reduce(d, reduction, "smooth_l1_loss")
    losses = S.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return reduce(losses, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) elsewhere."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x, t = _pair(input, target, "huber_loss")
    d = M.abs(x - t)
    losses = S.where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return reduce(losses, reduction, "huber_loss")


def kl_div(input: Tensor, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """target * (log target - input), with ``input`` log-probabilities; 0 where target is 0.

    ``reduction='batchmean'`` divides the sum by the batch size (the true KL divergence);
    'mean', as in PyTorch, divides by the number of elements.
    """
    x, t = _pair(input, target, "kl_div", same_shape=False)
    if log_target:
        losses = M.exp(t) * (t - x)
    else:
        safe = S.where(t > 0, t, 1.0)
        losses = S.where(t > 0, t * (M.log(safe) - x), 0.0 * x)  # xlogy: 0 log 0 = 0
    if reduction == "batchmean":
        return losses.sum() / (x.shape[0] if x.ndim else 1)
    return reduce(losses, reduction, "kl_div")


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p over dim, eps)."""
    n = R.norm(input, p, dim=dim, keepdim=True)
    return input / M.clamp(n, min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) over ``dim`` (x1 and x2 broadcast)."""
    try:
        np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"cosine_similarity: shapes {x1.shape} and {x2.shape} do not broadcast") from None
    n1 = M.clamp(R.norm(x1, 2, dim=dim, keepdim=True), min=eps)
    n2 = M.clamp(R.norm(x2, 2, dim=dim, keepdim=True), min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def _class_last(logits: Tensor) -> Tensor:
    """(N, C, d1, ...) logits as (N * d1 * ..., C) rows."""
    if logits.ndim == 2:
        return logits
    return S.movedim(logits, 1, -1).reshape(-1, logits.shape[1])


def cross_entropy_general(logits: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy with PyTorch's options: class ``weight``, ``ignore_index``, probability targets
    (a float target of the logits' shape), (N, C, d1, ...) inputs, and label smoothing with any of them."""
    if logits.ndim < 1:
        raise ValueError(f"cross_entropy: logits must have a class dim, got shape {logits.shape}")
    one = logits.ndim == 1
    x = logits.reshape(1, -1) if one else logits
    c = x.shape[1]
    xp = xp_for(logits.device)
    w = None
    if weight is not None:
        w = weight if isinstance(weight, Tensor) else Tensor(weight, dtype=logits.dtype, device=logits.device)
        if w.shape != (c,):
            raise ValueError(f"cross_entropy: weight must have shape ({c},) for {c} classes, got {w.shape}")
        w = w.astype(logits.dtype) if w.dtype != logits.dtype else w
    logp = LogSoftmax.apply(_class_last(x), axis=1)  # (M, C)
    t = target.data if isinstance(target, Tensor) else xp.asarray(target)
    t = t.reshape(1, -1) if one and t.dtype.kind == "f" else (t.reshape(1) if one else t)
    if t.dtype.kind == "f":  # class probabilities
        if tuple(t.shape) != x.shape:
            raise ValueError(f"cross_entropy: probability targets must have the logits' shape {logits.shape}, "
                             f"got {tuple(t.shape)}")
        probs = Tensor._make(t.astype(logits.dtype, copy=False))
        probs = _class_last(probs)
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / c
        terms = -(logp * probs)
        if w is not None:
            terms = terms * w
        losses = terms.sum(1)
        if reduction == "none":
            return losses.reshape(()) if one else losses.reshape((x.shape[0],) + x.shape[2:])
        return reduce(losses, reduction, "cross_entropy")
    if t.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: target must hold class indices (integers) or probabilities (floats), "
                         f"got dtype {t.dtype}")
    if tuple(t.shape) != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"cross_entropy: target must have shape {(x.shape[0],) + x.shape[2:]} for logits "
                         f"{logits.shape}, got {tuple(t.shape)}")
    flat = t.reshape(-1).astype(np.int64)
    keep = flat != ignore_index
    bad = flat[keep]
    if bad.size and (int(bad.min()) < 0 or int(bad.max()) >= c):
        b = int(bad.min()) if int(bad.min()) < 0 else int(bad.max())
        raise ValueError(f"cross_entropy: class index {b} is out of range for {c} classes")
    safe = xp.where(keep, flat, 0)
    rows = xp.arange(flat.shape[0])
    nll = -logp[rows, safe]
    keep_f = Tensor._make(keep.astype(logits.dtype))
    wt = keep_f if w is None else w[safe] * keep_f  # the weight of each sample's class (0 when ignored)
    losses = nll * wt
    if label_smoothing:
        smooth = -(logp * w).sum(1) if w is not None else -logp.sum(1)
        losses = losses * (1 - label_smoothing) + smooth * keep_f * (label_smoothing / c)
    if reduction == "none":
        return losses.reshape(()) if one else losses.reshape(tuple(t.shape))
    if reduction == "sum":
        return losses.sum()
    if reduction != "mean":
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return losses.sum() / wt.sum()  # PyTorch: the weighted mean over the samples not ignored


__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "normalize", "cosine_similarity", "cross_entropy_general"]
