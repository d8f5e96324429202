"""The real Fashion-MNIST, where it is installed (``apt-get install dataset-fashion-mnist``).

Marked ``data``; skipped, with the places searched as the reason, when the
files are nowhere to be found.
"""
import numpy as np
import pytest

from minitl.data import DataLoader, DatasetNotFoundError, FashionMNIST, Normalize

pytestmark = pytest.mark.data


def _load(train):
    try:
        return FashionMNIST(train=train)
    except DatasetNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST not installed: {' '.join(str(exc).split())}")


@pytest.fixture(scope="module")
def train():
    return _load(True)


@pytest.fixture(scope="module")
def test():
    return _load(False)


def test_sizes_and_classes(train, test):
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.class_counts().tolist() == [6_000] * 10
    assert test.class_counts().tolist() == [1_000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


def test_pixels(train, test):
    for ds in (train, test):
        assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (1, 28, 28)
        assert ds.images.min() == 0 and ds.images.max() == 255
    # The normalisation constants the examples use are this data's statistics
    # (squares fit in uint16, which keeps the 47M-pixel pass small).
    mean = train.images.mean(dtype=np.float64) / 255
    mean_sq = (train.images.astype(np.uint16) ** 2).mean(dtype=np.float64) / 255**2
    std = np.sqrt(mean_sq - mean**2)
    assert abs(mean - 0.2860) < 1e-3 and abs(std - 0.3530) < 1e-3


def test_k_shot_nested_on_real_data(train):
    five, twenty = train.k_shot(5, seed=0), train.k_shot(20, seed=0)
    assert five.class_counts().tolist() == [5] * 10
    assert set(five.indices.tolist()) <= set(twenty.indices.tolist())


def test_split_task_and_loader(train):
    task = train.subset([5, 6, 7, 8, 9])
    assert len(task) == 30_000 and task.classes == ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    loader = DataLoader(task, 256, shuffle=True, seed=0, transform=Normalize(0.2860, 0.3530))
    assert len(loader) == 118
    x, y = next(iter(loader))
    assert x.shape == (256, 1, 28, 28) and 0 <= y.numpy().min() and y.numpy().max() <= 4
