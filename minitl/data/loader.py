"""``DataLoader``: batches of ``(x, y)`` Tensors from an in-memory dataset.

Each batch is one vectorised gather (``np.take`` of the batch's indices) from
the uint8 image array, then the transform on the whole batch, then one
transfer to the device. There is no per-sample Python code, which matters
because the engine's steps are fast enough for a Python loop over 64 samples
to show up in the profile.

Shuffling is reproducible: epoch ``e`` of a loader with seed ``s`` uses
``numpy.random.default_rng([s, e])``, so every epoch has its own order, the
same on every run, and a resumed run can ``set_epoch`` to continue the
sequence.
"""
from __future__ import annotations

import math

import numpy as np

from ..core import backend
from ..core.random import check_state
from ..core.tensor import Tensor
from ._seed import draw_seed
from .transforms import random_generators, to_float


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)`` Tensors on ``device``.

    ``dataset``: anything with ``images`` and ``labels`` arrays (an
    ``ArrayDataset``), or an ``(images, labels)`` pair. ``transform``: a
    function on a NumPy batch (see ``minitl.data.transforms``); an integer batch
    that comes out of it (or that has none) is scaled to float32 [0, 1].
    ``seed``: the shuffle seed; None draws one from minitl's global generator
    once, at construction. ``len()`` is the number of batches.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed=None, transform=None, device="cpu"):
        if hasattr(dataset, "images") and hasattr(dataset, "labels"):
            images, labels = dataset.images, dataset.labels
        else:
            images, labels = dataset
        self.images, self.labels = np.asarray(images), np.asarray(labels)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = (draw_seed() if seed is None else int(seed)) if shuffle else seed
        self.transform = transform
        self.device = backend.normalize_device(device)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch``'s order (for resumed runs)."""
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The sample order of ``epoch`` (default: the next one), without advancing."""
        n = len(self.labels)
        if not self.shuffle:
            return np.arange(n)
        epoch = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self):
        return self.batches()

    def batches(self, start: int = 0):
        """One epoch of batches, like ``iter()``, beginning after its first ``start`` batches.

        The skipped batches are neither gathered nor transformed, so a random
        transform's generator stays where a checkpoint left it (resumption).
        """
        order = self.order()
        self.epoch += 1
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for begin in range(max(int(start), 0) * self.batch_size, stop, self.batch_size):
            yield self.batch(order[begin:begin + self.batch_size])

    def state_dict(self) -> dict:
        """What the loader needs to repeat its future batches: the shuffle seed, the
        next epoch, and the state of every generator its transform owns."""
        return {"seed": self.seed, "epoch": self.epoch,
                "transform_rngs": [g.bit_generator.state for g in random_generators(self.transform)]}

    def check_state_dict(self, state) -> None:
        """Raise ``ValueError`` naming what in ``state`` this loader cannot take; changes nothing."""
        if not isinstance(state, dict) or not isinstance(state.get("transform_rngs"), list):
            raise ValueError("DataLoader.load_state_dict wants the dict DataLoader.state_dict() returns")
        gens = random_generators(self.transform)
        saved = state["transform_rngs"]
        if len(gens) != len(saved):
            raise ValueError(f"the saved state has {len(saved)} transform generator(s), the loader has "
                             f"{len(gens)}: is it built with the same transforms?")
        for i, (g, s) in enumerate(zip(gens, saved)):
            try:
                check_state(s, g.bit_generator)
            except ValueError as e:
                raise ValueError(f"transform generator {i}: {e}") from None
        if "seed" in state and not (state["seed"] is None or (_is_int(state["seed"]) and state["seed"] >= 0)):
            raise ValueError(f"the saved shuffle seed {state['seed']!r} is not a non-negative integer")
        if "epoch" in state and not (_is_int(state["epoch"]) and state["epoch"] >= 0):
            raise ValueError(f"the saved epoch {state['epoch']!r} is not a count")

    def load_state_dict(self, state: dict) -> None:
        """Put back what :meth:`state_dict` saved (the transforms must be built the same way);
        checked whole first (:meth:`check_state_dict`)."""
        self.check_state_dict(state)
        for g, s in zip(random_generators(self.transform), state["transform_rngs"]):
            g.bit_generator.state = s
        if "seed" in state:
            self.seed = state["seed"]
        if "epoch" in state:
            self.epoch = int(state["epoch"])

    def batch(self, indices) -> tuple:
        """The ``(x, y)`` Tensors for the given sample indices (one gather, one transform)."""
        indices = np.asarray(indices, dtype=np.int64)
        x = np.take(self.images, indices, axis=0)
        y = np.take(self.labels, indices, axis=0).astype(np.int64, copy=False)
        if self.transform is not None:
            x = self.transform(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = to_float(x)
        return _tensor(np.ascontiguousarray(x), self.device), _tensor(y, self.device)

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.labels)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"device={self.device!r}, transform={self.transform!r})")


def _tensor(array: np.ndarray, device: str):
    """A minitl Tensor on ``device``, wrapping the batch without a copy on the CPU.

    ``minitl.tensor`` would copy; the batch is a fresh array that nothing else
    holds (``np.take`` copies), so wrapping it is safe.
    """
    return Tensor(array, device=device)
