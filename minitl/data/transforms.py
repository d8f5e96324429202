"""Batch transforms: NumPy ``(N, C, H, W)`` in, NumPy ``(N, C, H, W)`` out, no per-sample loop.

Images stay uint8 until a transform needs floats: geometric transforms
(``Pad``, ``RandomCrop``, ``RandomHorizontalFlip``) keep the dtype they get,
so they move a quarter of the bytes; ``Normalize`` and ``ToFloat`` produce
float32. An integer batch reaching ``Normalize`` or ``ToFloat`` is first
scaled by 1/255, so ``mean`` and ``std`` are in [0, 1] units, as usual:
``Normalize(0.2860, 0.3530)`` computes ``(x / 255 - 0.2860) / 0.3530``.

Random transforms own a ``numpy.random.Generator`` made from ``seed``; with
``seed=None`` the seed is drawn from minitl's global generator, so
``minitl.manual_seed`` makes them repeatable too.

:func:`is_random` is the one rule for "is this transform random?" (the
frozen-feature cache refuses random ones, checkpoints save their generators).
A transform of your own counts as random when it owns a generator as
``.rng``, sets ``random = True`` or is named ``Random...``; a plain function is
taken as deterministic.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._seed import make_rng


def to_float(x: np.ndarray) -> np.ndarray:
    """float32 batch: integers scaled to [0, 1] by 1/255, floats cast as they are."""
    if np.issubdtype(x.dtype, np.integer):
        out = x.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    return x.astype(np.float32, copy=False)


def random_generators(transform, depth: int = 0) -> list:
    """The NumPy generators a transform owns (``.rng``), looking inside ``Compose``:
    the state a checkpoint saves so that a resumed run draws the same augmentation."""
    if transform is None or depth > 4:
        return []
    if isinstance(transform, np.random.Generator):
        return [transform]
    found = []
    rng = getattr(transform, "rng", None)
    if isinstance(rng, np.random.Generator):
        found.append(rng)
    for child in getattr(transform, "transforms", None) or ():
        found.extend(random_generators(child, depth + 1))
    return found


def is_random(transform) -> bool:
    """Whether ``transform`` is random (augmentation), so the same image can come out differently.

    True when it (or anything inside a ``Compose``) owns a generator as ``.rng``,
    sets ``random = True`` or has a class name starting with ``Random``;
    ``Normalize``, ``Pad`` and ``ToFloat`` are not random.
    """
    if transform is None:
        return False
    if random_generators(transform) or getattr(transform, "random", False) is True \
            or type(transform).__name__.startswith("Random"):
        return True
    return any(is_random(t) for t in getattr(transform, "transforms", None) or ())


def _check_batch(x: np.ndarray, who: str) -> None:
    """Transforms work on whole batches; say so when given one image."""
    if x.ndim != 4:
        raise ValueError(f"{who} expects a batch of shape (N, C, H, W), got {x.shape}")


class Compose:
    """Apply transforms in order: ``Compose([RandomCrop(28, padding=2), Normalize(0.5, 0.5)])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToFloat:
    """uint8 in 0..255 to float32 in [0, 1] (the DataLoader's default)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return to_float(x)

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize:
    """``(x - mean) / std`` per channel (or one scalar for all), as float32.

    Integer input is scaled by 1/255 first. The work is one multiply and one
    add on the float copy: ``x * (1/std) + (-mean/std)``, with 1/255 folded
    into the scale.
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {std}")
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("mean and std must be scalars or one value per channel")

    def _shape(self, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Broadcast shape ``(1, C, 1, 1)`` for per-channel values, scalar otherwise."""
        if v.size == 1:
            return v.reshape(())
        _check_batch(x, "per-channel Normalize")
        if v.size != x.shape[1]:
            raise ValueError(f"Normalize has {v.size} channel values but the batch has {x.shape[1]} channels")
        return v.reshape(1, -1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        scale = 1.0 / self.std
        shift = -self.mean / self.std
        if np.issubdtype(x.dtype, np.integer):
            scale = scale / 255.0
        out = x.astype(np.float32)
        out *= self._shape(scale, x).astype(np.float32)
        out += self._shape(shift, x).astype(np.float32)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pad_widths(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """``int`` or ``(vertical, horizontal)`` or ``(left, top, right, bottom)`` to np.pad widths for H, W."""
    p = (padding,) if np.isscalar(padding) else tuple(padding)
    if len(p) == 1:
        p = (p[0], p[0], p[0], p[0])
    elif len(p) == 2:
        p = (p[1], p[0], p[1], p[0])
    if len(p) != 4 or any(int(v) < 0 for v in p):
        raise ValueError(f"padding must be n, (vertical, horizontal) or (left, top, right, bottom) >= 0; got {padding}")
    left, top, right, bottom = (int(v) for v in p)
    return (top, bottom), (left, right)


class Pad:
    """Pad the height and width of every image of the batch.

    ``padding``: ``n`` on all sides, ``(vertical, horizontal)``, or
    ``(left, top, right, bottom)``. ``mode``: ``'constant'`` (with ``fill``),
    ``'edge'`` or ``'reflect'``, as in ``numpy.pad``. Keeps the dtype.
    """

    def __init__(self, padding, fill=0, mode: str = "constant"):
        self.widths = _pad_widths(padding)
        if mode not in ("constant", "edge", "reflect"):
            raise ValueError(f"mode must be 'constant', 'edge' or 'reflect', got {mode!r}")
        self.fill, self.mode = fill, mode

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _check_batch(x, "Pad")
        widths = ((0, 0), (0, 0)) + self.widths
        if self.mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=self.fill)
        return np.pad(x, widths, mode=self.mode)

    def __repr__(self) -> str:
        return f"Pad({self.widths}, fill={self.fill}, mode={self.mode!r})"


class RandomCrop:
    """A random ``size`` crop per image (after optional padding), all in one gather.

    ``size``: ``n`` or ``(height, width)``. The crops are read through a
    sliding-window view of the batch, indexed by one offset pair per image,
    so the cost is one copy of the output, whatever the batch size.
    """

    def __init__(self, size, padding=0, fill=0, mode: str = "constant", seed=None):
        self.size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
        self.pad = Pad(padding, fill, mode) if np.any(np.asarray(padding)) else None
        self.rng = make_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _check_batch(x, "RandomCrop")
        if self.pad is not None:
            x = self.pad(x)
        n, _, height, width = x.shape
        h, w = self.size
        if h > height or w > width:
            raise ValueError(f"crop size {self.size} is larger than the (padded) images {height}x{width}")
        top = self.rng.integers(0, height - h + 1, size=n)
        left = self.rng.integers(0, width - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(2, 3))  # (N, C, H-h+1, W-w+1, h, w), a view
        return windows[np.arange(n), :, top, left]  # (N, C, h, w)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, pad={self.pad})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, chosen per image."""

    def __init__(self, p: float = 0.5, seed=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = p
        self.rng = make_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _check_batch(x, "RandomHorizontalFlip")
        flip = self.rng.random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
