"""The one frozen-feature cache: representations of a frozen backbone, computed once.

A strategy that freezes the whole backbone (``features``) trains only the head,
so the backbone's output for an image never changes during training: it can
be computed once and the head trained on it, which is an order of magnitude
faster. That holds only when the representation is a function of the image
alone, so caching is refused when

- the loader's transform is random (:func:`minitl.data.transforms.is_random`):
  each epoch would see other augmented images, hence other features;
- the backbone is not deterministic (dropout with ``p > 0``), or a BatchNorm
  of the backbone would normalise with batch statistics during training
  (not eval-locked as a frozen BatchNorm is, or without running statistics):
  the cached features are computed in eval mode, and training must see the same.

Features are computed in eval mode under ``no_grad`` (:func:`inference`), so every
conv -> BatchNorm (-> ReLU) of the backbone runs as one folded conv
(``nn.conv_bn_fold``); training the head on a frozen, uncached backbone folds too,
since no gradient flows into it.

``Setup.fit`` / ``Setup.evaluate`` and the experiment grid all go through
:class:`FeatureCache`; a cache shared between runs (the grid's) computes the
features of one (backbone, dataset, transform) once: its key hashes the
backbone's weights, so runs from different pretrained backbones never mix.
"""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from ..core import backend
from ..core.grad_mode import no_grad
from ..data import DataLoader
from ..data.transforms import is_random
from ..nn.layers import Dropout
from .batchnorm import bn_batch_dependent
from .groups import head_names

# Rows per forward pass when computing features (whatever the loader's batch size).
FEATURE_BATCH = 1000


@contextlib.contextmanager
def inference(model):
    """Eval mode without a graph; every sub-module's previous mode comes back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _why_backbone_varies(model) -> str | None:
    head = getattr(model, "head", None)
    head_ids = {id(m) for m in head.modules()} if head is not None else set()
    if any(isinstance(m, Dropout) and m.p > 0 and id(m) not in head_ids for m in model.modules()):
        return "the backbone holds dropout, so its features are not a function of the image alone"
    skip = {n for n, m in model.named_modules() if id(m) in head_ids}
    return bn_batch_dependent(model, skip=skip)


def backbone_is_deterministic(model) -> bool:
    """Whether ``model.forward_features`` gives the same output for the same input, in
    training as in eval mode: no dropout with ``p > 0`` and every BatchNorm of the
    backbone eval-locked with running statistics. That is what makes its features cacheable."""
    return _why_backbone_varies(model) is None


def why_not_cacheable(model, loader) -> str | None:
    """The reason features of ``model`` over ``loader`` cannot be cached, or None when they can."""
    if is_random(getattr(loader, "transform", None)):
        return "the loader has a random transform (augmentation), which changes the features every epoch"
    return _why_backbone_varies(model)


def cache_features(model, loader, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)``: ``model.forward_features`` of every sample of a ``DataLoader``.

    Runs in eval mode without a graph (modes restored), in the dataset's order,
    in chunks of ``batch_size`` rows (default: the larger of the loader's batch
    size and :data:`FEATURE_BATCH`), through the loader's transform, without
    touching its shuffle or epoch counter. Features come back as NumPy arrays.
    """
    n = len(loader.labels)
    size = batch_size or max(loader.batch_size, FEATURE_BATCH)
    feats, labels = [], []
    with inference(model):
        for i in range(0, n, size):
            x, y = loader.batch(np.arange(i, min(i + size, n)))
            feats.append(model.forward_features(x).numpy())
            labels.append(y.numpy())
    if not feats:
        raise ValueError("cache_features: the loader holds no samples")
    return np.concatenate(feats), np.concatenate(labels)


class FeatureCache:
    """Frozen-backbone features, computed once per (backbone weights, dataset, transform, device)."""

    def __init__(self):
        self._store: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._store)

    def features(self, model, loader) -> tuple[np.ndarray, np.ndarray]:
        """``(features, labels)`` of every sample of ``loader`` (a ``DataLoader``), from the
        cache when this backbone has seen these data before. Raises ``ValueError`` when
        the features cannot be cached (see :func:`why_not_cacheable`)."""
        why = why_not_cacheable(model, loader)
        if why is not None:
            raise ValueError(f"cannot cache features: {why}")
        key = _key(model, loader)
        if key not in self._store:
            self._store[key] = cache_features(model, loader)
        return self._store[key]

    def loader(self, model, loader):
        """Batches of features in the order ``loader`` would give its images.

        For a ``DataLoader``: a ``DataLoader`` over the cached features with the
        same batch size, shuffle seed, ``drop_last``, device and next epoch, so
        training the head on it matches training the frozen-backbone model on
        ``loader`` (up to float rounding). Any other iterable of ``(x, y)``
        batches gives a list of ``(features, y)`` batches, in its order (not stored).
        """
        if not isinstance(loader, DataLoader):
            why = why_not_cacheable(model, loader)
            if why is not None:
                raise ValueError(f"cannot cache features: {why}")
            with inference(model):
                return [(model.forward_features(x).detach(), y) for x, y in loader]
        feats, labels = self.features(model, loader)
        cached = DataLoader((feats, labels), batch_size=loader.batch_size, shuffle=loader.shuffle,
                            drop_last=loader.drop_last, seed=loader.seed, device=loader.device)
        cached.set_epoch(loader.epoch)
        return cached


def feature_loader(model, loader):
    """:meth:`FeatureCache.loader` with a cache of its own (nothing shared)."""
    return FeatureCache().loader(model, loader)


def _key(model, loader) -> str:
    """A digest of what the features depend on: the backbone (every tensor but the head's),
    the images and labels, the transform and the device."""
    h = hashlib.sha256(type(model).__name__.encode())
    heads = set(head_names(model))
    for name, value in model.state_dict().items():
        if name in heads:
            continue
        a = np.ascontiguousarray(backend.to_device(getattr(value, "data", value), "cpu"))
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    h.update(np.ascontiguousarray(loader.images).tobytes())
    h.update(np.ascontiguousarray(loader.labels).astype("<i8").tobytes())
    h.update(f"{loader.transform!r}|{loader.device}".encode())
    return h.hexdigest()
