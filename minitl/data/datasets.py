"""Datasets held as two arrays, and the task-building operations transfer experiments need.

``ArrayDataset`` keeps ``images`` as uint8 ``(N, C, H, W)`` (4x smaller than
float32; transforms convert a batch at a time) and ``labels`` as int64. Every
derived dataset (``subset``, ``k_shot``, ``split``, ``select``) records in
``indices`` which examples of the original dataset it holds, so an experiment
can report exactly which images a 5-shot run saw.

``FashionMNIST``, ``MNIST``, ``KMNIST`` and ``CIFAR10`` find their files (see
``locate``), optionally download them (see ``download``), and read them.
``download=True`` only fetches when the files are found nowhere, and always
into ``~/.cache/minitl/<name>`` (never into ``root``, which may be read-only
or shared), where later runs find them.
"""
from __future__ import annotations

import os

import numpy as np

from . import catalog
from ._seed import make_rng
from .cifar import (extract_cifar_archive, read_cifar_archive, read_cifar_batches,
                    read_cifar_class_names)
from .download import DownloadError, fetch, sha256_of
from .idx import read_idx_pair
from .locate import DatasetNotFoundError, cache_dir, find_archive, not_found_message, search


class ArrayDataset:
    """Images and labels in memory, with ``subset``, ``k_shot``, ``split`` and ``select``.

    ``images``: ``(N, C, H, W)`` (a 3-D ``(N, H, W)`` array gets a channel axis);
    kept in its dtype, normally uint8. ``labels``: N integers in ``0..len(classes)-1``.
    ``classes``: the class names (default ``'0'``, ``'1'``, ...). ``indices``:
    positions in the original dataset (default ``0..N-1``).
    """

    def __init__(self, images, labels, classes=None, indices=None, name: str | None = None):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W) or (N, H, W), got {images.shape}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"expected {len(images)} labels in a 1-D array, got shape {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        if classes is None:
            classes = tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0))
        classes = tuple(classes)
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in 0..{len(classes) - 1}, found {labels.min()}..{labels.max()}")
        self.images = images
        self.labels = labels
        self.classes = classes
        self.indices = np.arange(len(labels)) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.shape != labels.shape:
            raise ValueError(f"expected {len(labels)} indices, got shape {self.indices.shape}")
        self.name = name or type(self).__name__

    # --- basics -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        """``(image, label)`` for an integer; ``(images, labels)`` arrays for a slice or index array."""
        if isinstance(i, (int, np.integer)):
            return self.images[i], int(self.labels[i])
        return self.images[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        """How many classes the labels range over (``len(classes)``)."""
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's shape, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> np.ndarray:
        """Examples per class, an int64 array of length ``num_classes``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (f"{self.name}({len(self)} images {c}x{h}x{w} {self.images.dtype}, "
                f"{self.num_classes} classes)")

    # --- derived datasets ---------------------------------------------------
    def select(self, positions) -> "ArrayDataset":
        """A new dataset holding the examples at ``positions`` (ints or a boolean mask), in that order."""
        positions = np.asarray(positions)
        if positions.dtype == bool:
            positions = np.flatnonzero(positions)
        positions = positions.astype(np.int64, copy=False)
        return ArrayDataset(self.images[positions], self.labels[positions], self.classes,
                            self.indices[positions], self.name)

    def subset(self, classes, relabel: bool = True) -> "ArrayDataset":
        """The examples of the given classes (ints or class names), for split-task experiments.

        With ``relabel=True`` the i-th class given becomes label i and ``classes``
        names only those, so ``subset([5, 6, 7, 8, 9])`` is a 5-class task with
        labels 0..4. With ``relabel=False`` labels and names are unchanged.
        """
        wanted = [self._class_id(c) for c in classes]
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"classes repeated in {list(classes)}")
        if not wanted:
            raise ValueError("subset needs at least one class")
        chosen = self.select(np.isin(self.labels, wanted))
        if not relabel:
            return chosen
        lookup = np.full(self.num_classes, -1, dtype=np.int64)
        lookup[wanted] = np.arange(len(wanted))
        return ArrayDataset(chosen.images, lookup[chosen.labels], [self.classes[c] for c in wanted],
                            chosen.indices, self.name)

    def _class_id(self, c) -> int:
        """The label of class ``c``, given as an int or a name."""
        if isinstance(c, str):
            if c not in self.classes:
                raise ValueError(f"unknown class {c!r}; classes are {list(self.classes)}")
            return self.classes.index(c)
        c = int(c)
        if not 0 <= c < self.num_classes:
            raise ValueError(f"class {c} out of range 0..{self.num_classes - 1}")
        return c

    def _per_class_orders(self, seed):
        """For each class present, its positions in a seeded random order.

        The order depends only on the seed and the dataset, never on how many
        examples are then taken, which is what makes ``k_shot`` nested in k.
        """
        rng = make_rng(seed)
        for c in range(self.num_classes):
            pos = np.flatnonzero(self.labels == c)
            if len(pos):
                yield c, pos[rng.permutation(len(pos))]

    def k_shot(self, k: int, seed) -> "ArrayDataset":
        """``k`` examples of every class present, chosen with ``seed``.

        Nested across k for one seed: ``k_shot(5, s)`` lies inside ``k_shot(20, s)``.
        A class with fewer than ``k`` examples raises ``ValueError``. The result
        keeps the dataset's order (sorted by position).
        """
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        picked = []
        for c, order in self._per_class_orders(seed):
            if len(order) < k:
                raise ValueError(f"class {c} ({self.classes[c]!r}) has {len(order)} examples; "
                                 f"expected at least k={k}")
            picked.append(order[:k])
        return self.select(np.sort(np.concatenate(picked)))

    def split(self, val_fraction: float = 0.1, seed=0) -> tuple["ArrayDataset", "ArrayDataset"]:
        """A stratified ``(train, validation)`` split: each class keeps its share in both.

        Each class puts ``round(n_c * val_fraction)`` examples in validation, never
        all of them (a class with at least 2 examples keeps one for training).
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        train, val = [], []
        for _, order in self._per_class_orders(seed):
            n_val = min(int(round(len(order) * val_fraction)), len(order) - 1)
            val.append(order[:n_val])
            train.append(order[n_val:])
        empty = np.zeros(0, dtype=np.int64)
        return (self.select(np.sort(np.concatenate(train or [empty]))),
                self.select(np.sort(np.concatenate(val or [empty]))))


# --- the real datasets ------------------------------------------------------
def _find_or_fetch(info, split: str, root, download: bool, after_fetch=None):
    """The split's files, downloading them into the cache first if asked and needed.

    ``after_fetch(cache)`` runs after a successful download (CIFAR unpacks its
    archive there). Raises ``DatasetNotFoundError`` listing the places searched.
    """
    place, found = search(info, split, root)
    if place is not None:
        return found
    extra = ""
    if download:
        cache = cache_dir(info.name)
        try:
            fetch(info, cache)
            if after_fetch is not None:
                after_fetch(cache)
            place, found = search(info, split, root)
            if place is not None:
                return found
        except DownloadError as exc:
            extra = f"download=True failed: {exc}"
    raise DatasetNotFoundError(not_found_message(info, split, found, extra))


class _IdxImages(ArrayDataset):
    """A 28x28 grey-scale IDX dataset; subclasses name their catalog entry."""

    _catalog_name = ""

    def __init__(self, root=None, train: bool = True, download: bool = False):
        info = catalog.info(self._catalog_name)
        files = _find_or_fetch(info, "train" if train else "test", root, download)
        images_path, labels_path = files["images"][0], files["labels"][0]
        images, labels = read_idx_pair(images_path, labels_path)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
        if labels.size and labels.max() >= len(info.classes):
            raise ValueError(f"{labels_path}: expected labels 0..{len(info.classes) - 1}, found {labels.max()}")
        super().__init__(images[:, None], labels, info.classes, name=type(self).__name__)
        self.train = train
        self.root = os.path.dirname(images_path)
        self.files = (images_path, labels_path)


class FashionMNIST(_IdxImages):
    """Zalando's Fashion-MNIST: 60,000 train / 10,000 test 28x28 grey images, 10 classes.

    ``FashionMNIST(root=None, train=True, download=False)``; also found where
    Debian's ``dataset-fashion-mnist`` package installs it.
    """

    _catalog_name = "fashion-mnist"


class MNIST(_IdxImages):
    """LeCun's handwritten digits: 60,000 train / 10,000 test 28x28 grey images."""

    _catalog_name = "mnist"


class KMNIST(_IdxImages):
    """Kuzushiji-MNIST (cursive Japanese hiragana): 60,000 / 10,000 28x28 grey images."""

    _catalog_name = "kmnist"


class CIFAR10(ArrayDataset):
    """CIFAR-10, binary version: 50,000 train / 10,000 test 32x32 colour images, 10 classes.

    Images are uint8 ``(N, 3, 32, 32)``. Looks for the unpacked
    ``cifar-10-batches-bin`` files, then for ``cifar-10-binary.tar.gz`` (read
    in place), then downloads if asked.
    """

    def __init__(self, root=None, train: bool = True, download: bool = False):
        info = catalog.info("cifar-10")
        split = "train" if train else "test"
        names = info.files[split]["batches"]
        place, found = search(info, split, root)
        archive = None if place is not None else find_archive(info, root)
        if archive is not None:
            _check_official_archive(archive, info)
            images, labels = read_cifar_archive(archive, names, info.archive_dir)
            classes, self.root = info.classes, os.path.dirname(archive)
        else:
            def unpack(cache):
                # Unpacked once after download; the 170 MB archive is then removed.
                archive = os.path.join(cache, info.remote[0].name)
                extract_cifar_archive(archive, os.path.join(cache, info.archive_dir),
                                      names=_all_cifar_members(info), folder=info.archive_dir)
                os.remove(archive)

            paths = _find_or_fetch(info, split, root, download, after_fetch=unpack)["batches"]
            images, labels = read_cifar_batches(paths)
            self.root = os.path.dirname(paths[0])
            classes = read_cifar_class_names(os.path.join(self.root, "batches.meta.txt")) or info.classes
        super().__init__(images, labels, classes, name="CIFAR10")
        self.train = train


def _check_official_archive(archive, info) -> None:
    """An archive with the official name and size must have the official SHA-256.

    Its gzip CRC only covers what was compressed, not which file it is; a
    same-sized file that differs is a damaged download. (Smaller archives, such
    as ones a user or a test builds, are read on their own checks.)
    """
    remote = next((r for r in info.remote if r.name == os.path.basename(archive)), None)
    if remote is None or remote.sha256 is None or os.path.getsize(archive) != remote.size:
        return
    digest = sha256_of(archive)
    if digest != remote.sha256:
        raise ValueError(f"{archive}: SHA-256 mismatch: expected {remote.sha256} for the official "
                         f"{remote.name}, found {digest} (damaged download? delete it and rerun with --download)")


def _all_cifar_members(info) -> tuple[str, ...]:
    """Every file worth unpacking from the CIFAR archive: all batches and the class names."""
    return info.files["train"]["batches"] + info.files["test"]["batches"] + ("batches.meta.txt",)
