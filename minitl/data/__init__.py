"""Data for transfer experiments: readers, dataset finding and downloading, tasks, loading.

- ``FashionMNIST``, ``MNIST``, ``KMNIST``, ``CIFAR10``: ``(root=None, train=True, download=False)``;
  ``EMNIST(split="letters", ...)`` (upright images, letters labelled 0..25).
- ``episodes``: N-way K-shot tasks (``sample_episode``) for meta-learning.
- ``ArrayDataset``: uint8 images + int64 labels, with ``subset`` (split tasks),
  ``k_shot`` (nested few-shot sets), ``split`` (stratified validation) and ``select``.
- ``DataLoader``: seeded, vectorised batches of Tensors on a device.
- ``transforms``: ``Normalize``, ``Pad``, ``RandomCrop``, ``RandomHorizontalFlip``, ``Compose``.
- ``read_idx`` / ``write_idx``, ``read_cifar_batch``: the file formats.
- ``tasks``: class-split tasks (``split_task``, ``Task``), named datasets, fingerprints.
"""
from . import episodes, tasks, transforms
from .cifar import read_cifar_batch, write_cifar_batch
from .datasets import CIFAR10, KMNIST, MNIST, ArrayDataset, FashionMNIST
from .emnist import EMNIST
from .episodes import Episode, sample_episode
from .download import ChecksumError, DownloadError, download_file
from .idx import read_idx, read_idx_pair, write_idx
from .loader import DataLoader
from .locate import DatasetNotFoundError, cache_dir
from .tasks import Task, load_dataset, normalization, split_task
from .transforms import Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, ToFloat, is_random

__all__ = [
    "ArrayDataset", "FashionMNIST", "MNIST", "KMNIST", "CIFAR10", "EMNIST", "episodes", "Episode",
    "sample_episode",
    "DataLoader", "transforms", "Compose", "Normalize", "Pad", "RandomCrop",
    "RandomHorizontalFlip", "ToFloat",
    "read_idx", "read_idx_pair", "write_idx", "read_cifar_batch", "write_cifar_batch",
    "download_file", "DownloadError", "ChecksumError", "DatasetNotFoundError", "cache_dir",
    "tasks", "Task", "split_task", "load_dataset", "normalization", "is_random",
]
