"""Tasks for experiments: class-split tasks, named datasets, data fingerprints.

A :class:`Task` is a named pair of train and test datasets (``ArrayDataset``
or anything with ``images``, ``labels``, ``classes``, ``k_shot``).
``split_task`` builds the split-task setting of transfer experiments (for
example Fashion-MNIST classes 0-4 as the source, 5-9 as the target).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from . import catalog
from .datasets import CIFAR10, KMNIST, MNIST, FashionMNIST
from .emnist import EMNIST, SPLITS as EMNIST_SPLITS
from .transforms import Normalize

DATASETS = ("fashion-mnist", "mnist", "kmnist", "cifar-10") + tuple(f"emnist-{s}" for s in EMNIST_SPLITS)


@dataclass
class Task:
    """A named classification task: ``train`` and ``test`` datasets with the same classes."""

    name: str
    train: object
    test: object

    @property
    def num_classes(self) -> int:
        """How many classes the task has."""
        return len(self.train.classes)

    @property
    def shape(self) -> tuple:
        """One input's shape, ``(C, H, W)``."""
        return tuple(self.train.images.shape[1:])


def _class_index(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"class {text!r} in {whole!r} is not a class index (use e.g. 0-4 or 0,2,4)")
    return int(text)


def parse_classes(text, num_classes: int | None = None) -> list[int]:
    """``'0-4'`` -> [0, 1, 2, 3, 4]; ``'5,7,9'`` -> [5, 7, 9]; a list passes through.

    ``ValueError`` names the problem: a part that is not a class index
    (``'a-b'``), a range that runs backwards (``'9-0'``), a class given twice
    (``'1,1'``), no class at all (``','``), or, with ``num_classes``, a class
    outside ``0..num_classes-1`` (``'0-12'`` for a 10-class dataset).
    """
    if not isinstance(text, str):
        out = [int(c) for c in text]
        text = ",".join(map(str, out))
    else:
        out = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (_class_index(v, text) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError(f"class range {part!r} runs backwards (did you mean {hi}-{lo}?)")
                out.extend(range(lo, hi + 1))
            else:
                out.append(_class_index(part, text))
    if not out:
        raise ValueError(f"no classes in {text!r} (use e.g. 0-4 or 0,2,4)")
    twice = sorted({c for c in out if out.count(c) > 1})
    if twice:
        raise ValueError(f"class {twice[0]} is given twice in {text!r}")
    if num_classes is not None and not all(0 <= c < num_classes for c in out):
        bad = next(c for c in out if not 0 <= c < num_classes)
        raise ValueError(f"class {bad} in {text!r} is out of range: the dataset has classes 0-{num_classes - 1}")
    return out


def classes_label(classes) -> str:
    """[0, 1, 2, 3, 4] -> ``'0-4'`` (a contiguous run), else ``'0,2,4'``."""
    classes = list(classes)
    if len(classes) > 2 and classes == list(range(classes[0], classes[-1] + 1)):
        return f"{classes[0]}-{classes[-1]}"
    return ",".join(str(c) for c in classes)


def limit_dataset(dataset, limit: int | None, seed: int = 0):
    """At most ``limit`` examples, class-balanced (a k-shot sample), for smoke runs."""
    if not limit or limit >= len(dataset):
        return dataset
    per_class = max(1, int(limit) // len(dataset.classes))
    smallest = int(np.bincount(dataset.labels, minlength=len(dataset.classes)).min())
    return dataset.k_shot(min(per_class, smallest), seed=seed)


def split_task(train, test, classes, name: str, limit: int | None = None) -> Task:
    """The task of ``classes`` (relabelled 0..n-1) cut from full train/test datasets."""
    classes = parse_classes(classes)
    tr = limit_dataset(train.subset(classes, relabel=True), limit)
    te = limit_dataset(test.subset(classes, relabel=True), limit)
    return Task(f"{name}[{classes_label(classes)}]", tr, te)


def load_dataset(name: str = "fashion-mnist", root=None, download: bool = False):
    """``(train, test)`` of a named dataset; raises ``DatasetNotFoundError`` when absent."""
    if name.startswith("emnist-") and name[len("emnist-"):] in EMNIST_SPLITS:
        split = name[len("emnist-"):]
        return (EMNIST(split, root=root, train=True, download=download),
                EMNIST(split, root=root, train=False, download=download))
    cls = {"fashion-mnist": FashionMNIST, "mnist": MNIST, "kmnist": KMNIST, "cifar-10": CIFAR10}.get(name)
    if cls is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return cls(root=root, train=True, download=download), cls(root=root, train=False, download=download)


def dataset_classes(name: str) -> tuple[str, ...]:
    """The class names of a named dataset (no file is read)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return catalog.info(name).classes


def fashion_split(root=None, download: bool = False, limit: int | None = None,
                  source_limit: int | None = None) -> tuple[Task, Task]:
    """``(source, target)``: the Fashion-MNIST split every demo and example uses.

    Classes 0-4 (T-shirt, trouser, pullover, dress, coat) as the source task,
    5-9 (sandal, shirt, sneaker, bag, ankle boot) as the target, each
    relabelled 0-4; ``limit`` caps each task's train and test sets (class-balanced),
    ``source_limit`` the source task's alone when given.
    """
    train, test = load_dataset("fashion-mnist", root, download)
    return (split_task(train, test, "0-4", "fashion-mnist", limit=limit if source_limit is None else source_limit),
            split_task(train, test, "5-9", "fashion-mnist", limit=limit))


def fingerprint(dataset) -> str:
    """A short hash of a dataset's images and labels: changes if any pixel or label does."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(dataset.images).tobytes())
    h.update(np.ascontiguousarray(dataset.labels).astype("<i8").tobytes())
    return h.hexdigest()[:16]


# Per-dataset pixel mean and std of the training set, in [0, 1] units (for Normalize).
NORMALIZATION = {
    "fashion-mnist": (0.2860, 0.3530),
    "mnist": (0.1307, 0.3081),
    "kmnist": (0.1918, 0.3483),
    "cifar-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
# EMNIST reuses MNIST's figures: it is converted from the same NIST handwriting
# (Special Database 19) by a procedure that mimics MNIST's. Not measured on EMNIST
# here (its files are not installable on our machines); across datasets the grid
# scales the target as the source was scaled in pretraining anyway.
NORMALIZATION.update({name: NORMALIZATION["mnist"] for name in DATASETS if name.startswith("emnist-")})


def normalization(name: str):
    """The ``Normalize`` transform usual for dataset ``name``."""
    mean, std = NORMALIZATION[name]
    return Normalize(mean, std)
