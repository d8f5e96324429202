"""``F.pad`` (constant, reflect, replicate, circular; asymmetric; negative widths crop) and
``F.one_hot``, re-exported by ``nn.functional``."""
from __future__ import annotations

import numpy as np

from ..core.backend import xp_for
from ..core.tensor import Tensor
from ..ops.arrange import ConstantPad
from ..ops.indexing import GetItem

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _widths(shape, pad):
    """PyTorch's flat ``pad`` (last dim first: left, right, then the dim before...) as per-dim pairs."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(f"pad: needs an even number of widths, at most 2 per dim; got {pad} for shape {shape}")
    widths = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        widths[len(shape) - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return widths


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad (or, with negative widths, crop) the last ``len(pad) // 2`` dims of ``input``."""
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    widths = _widths(input.shape, pad)
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f"pad: value= is only used by mode='constant', got mode {mode!r}")
    out = input
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, input.shape))
    for (lo, hi), n in zip(widths, input.shape):
        if n - max(-lo, 0) - max(-hi, 0) < 0:
            raise ValueError(f"pad: cropping {(lo, hi)} is more than the size {n} of a dim of shape {input.shape}")
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        out = GetItem.apply(out, index=crop)
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if not any(lo or hi for lo, hi in grow):
        return out
    if mode == "constant":
        return ConstantPad.apply(out, widths=tuple(grow), value=0.0 if value is None else value)
    # reflect / replicate / circular: gather each padded dim through an index map (its backward scatter-adds)
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    for d, (lo, hi) in enumerate(grow):
        if not (lo or hi):
            continue
        n = out.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect widths {(lo, hi)} must be smaller than the dim's size {n} "
                             f"(shape {input.shape})")
        if n == 0 or (mode == "circular" and (lo > n or hi > n)):
            raise ValueError(f"pad: {mode} widths {(lo, hi)} do not fit a dim of size {n} (shape {input.shape})")
        idx = xp_for(out.device).asarray(np.pad(np.arange(n), (lo, hi), mode=np_mode))
        out = GetItem.apply(out, index=(slice(None),) * d + (idx,))
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot vectors of integer class indices (a new last dim of ``num_classes``)."""
    t = tensor if isinstance(tensor, Tensor) else Tensor(tensor)
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: needs an integer tensor of class indices, got dtype {t.dtype}")
    xp = xp_for(t.device)
    lo = int(t.data.min()) if t.numel() else 0
    hi = int(t.data.max()) if t.numel() else -1
    if num_classes == -1:
        if not t.numel():
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes=")
        num_classes = hi + 1
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"one_hot: class index {lo if lo < 0 else hi} is out of range for {num_classes} classes")
    out = (t.data[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor._make(out)


__all__ = ["pad", "one_hot"]
