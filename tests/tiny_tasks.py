"""Tiny synthetic image-classification data for experiment and CLI tests (no real dataset needed).

Each class is a fixed random prototype image plus pixel noise, so a small
MLP learns it in a few steps and a model pretrained on some classes carries
something to the others.
"""
from __future__ import annotations

import os

import numpy as np

from minitl.data import ArrayDataset, write_idx


def synthetic_images(n_per_class: int, classes: int = 6, size: int = 8, noise: float = 40.0, seed: int = 0):
    """``(images uint8 (N, 1, size, size), labels int64)``; prototypes are shared by every seed."""
    protos = np.random.default_rng(1234).uniform(0, 255, (classes, 1, size, size))
    labels = np.repeat(np.arange(classes), n_per_class)
    noisy = protos[labels] + np.random.default_rng(seed).normal(0, noise, (len(labels), 1, size, size))
    return np.clip(noisy, 0, 255).astype(np.uint8), labels


def synthetic_dataset(n_per_class: int, classes: int = 6, size: int = 8, seed: int = 0) -> ArrayDataset:
    """An ``ArrayDataset`` of :func:`synthetic_images`."""
    images, labels = synthetic_images(n_per_class, classes, size, seed=seed)
    return ArrayDataset(images, labels, name="Synthetic")


def write_fake_fashion_mnist(root, n_train: int = 20, n_test: int = 10) -> str:
    """Write a tiny 10-class, 28x28 dataset under the Fashion-MNIST file names into ``root``.

    ``FashionMNIST(root=root)`` then reads it, so the CLI's real data path runs in seconds.
    """
    os.makedirs(root, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_images(n, classes=10, size=28, seed=seed)
        write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), images[:, 0])
        write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels.astype(np.uint8))
    return os.fspath(root)


def write_fake_emnist(root, split: str = "letters", classes: int = 26, n_train: int = 3, n_test: int = 2) -> str:
    """Write a tiny EMNIST split into ``root/emnist`` as NIST stores it (images transposed, letters from 1)."""
    folder = os.path.join(root, "emnist")
    os.makedirs(folder, exist_ok=True)
    first = 1 if split == "letters" else 0
    for part, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = synthetic_images(n, classes=classes, size=28, seed=seed)
        write_idx(os.path.join(folder, f"emnist-{split}-{part}-images-idx3-ubyte.gz"), images[:, 0].transpose(0, 2, 1))
        write_idx(os.path.join(folder, f"emnist-{split}-{part}-labels-idx1-ubyte.gz"), (labels + first).astype(np.uint8))
    return os.fspath(root)
