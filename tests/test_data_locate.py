"""Where datasets are looked for, in which order, and what the error says when they are nowhere."""
import dataclasses

import numpy as np
import pytest

from minitl.data import KMNIST, MNIST, DatasetNotFoundError, FashionMNIST, write_idx
from minitl.data import catalog


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty home and no $MINITL_DATA; Fashion-MNIST's system directory hidden."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    entry = dataclasses.replace(catalog.CATALOG["fashion-mnist"], system_dirs=(str(tmp_path / "system"),))
    monkeypatch.setitem(catalog.CATALOG, "fashion-mnist", entry)
    return tmp_path


def _write_set(directory, n, value, gz=True, dotted=False):
    """A tiny IDX dataset whose images all equal ``value`` (to tell sets apart)."""
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    sep = "." if dotted else "-"
    for prefix in ("train", "t10k"):
        write_idx(directory / f"{prefix}-images{sep}idx3-ubyte{ext}", np.full((n, 28, 28), value, np.uint8))
        write_idx(directory / f"{prefix}-labels{sep}idx1-ubyte{ext}", np.arange(n, dtype=np.uint8) % 10)


def test_root_itself(env):
    _write_set(env / "r", 3, 1, gz=False)
    ds = MNIST(root=env / "r")
    assert len(ds) == 3 and ds.images.max() == 1 and ds.root == str(env / "r")


def test_root_subdirectory_named_after_the_dataset(env):
    _write_set(env / "r" / "kmnist", 4, 2)
    assert len(KMNIST(root=env / "r")) == 4


def test_dotted_file_names(env):
    _write_set(env / "r", 2, 3, gz=False, dotted=True)
    assert len(MNIST(root=env / "r", train=False)) == 2


def test_search_order(env, monkeypatch):
    _write_set(env / "system", 5, 50)
    assert FashionMNIST().images.max() == 50
    _write_set(env / "home" / ".cache" / "minitl" / "fashion-mnist", 5, 40)
    assert FashionMNIST().images.max() == 40
    monkeypatch.setenv("MINITL_DATA", str(env / "shared"))
    _write_set(env / "shared" / "fashion-mnist", 5, 30)
    assert FashionMNIST().images.max() == 30
    _write_set(env / "root", 5, 20)
    assert FashionMNIST(root=env / "root").images.max() == 20


def test_minitl_data_is_a_directory_of_datasets(env, monkeypatch):
    # MNIST and Fashion-MNIST share file names: a flat $MINITL_DATA must not be read as either.
    _write_set(env / "flat", 2, 9)
    monkeypatch.setenv("MINITL_DATA", str(env / "flat"))
    with pytest.raises(DatasetNotFoundError):
        MNIST()


def test_incomplete_directory_is_skipped_and_reported(env):
    _write_set(env / "r", 2, 1)
    (env / "r" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        FashionMNIST(root=env / "r")
    assert f"{env / 'r'} (root): missing train-labels-idx1-ubyte[.gz]" in str(err.value)
    assert len(FashionMNIST(root=env / "r", train=False)) == 2  # the test split is complete


def test_not_found_message_lists_every_place(env, monkeypatch):
    monkeypatch.setenv("MINITL_DATA", str(env / "shared"))
    with pytest.raises(DatasetNotFoundError) as err:
        FashionMNIST(root=env / "mine")
    msg = str(err.value)
    assert msg.startswith("FashionMNIST (train split) not found. Looked in:")
    expected = [env / "mine", env / "mine" / "fashion-mnist", env / "shared" / "fashion-mnist",
                env / "home" / ".cache" / "minitl" / "fashion-mnist", env / "system"]
    positions = [msg.index(str(p) + " (") for p in expected]
    assert positions == sorted(positions)  # listed in search order
    assert "FashionMNIST(download=True)" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_unset_minitl_data_is_mentioned(env):
    with pytest.raises(DatasetNotFoundError, match=r"\$MINITL_DATA/<name>: not set"):
        MNIST()


def test_wrong_image_size_is_rejected(env):
    d = env / "r"
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte", np.zeros((2, 32, 32), np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="expected 28x28 images, found 32x32"):
        MNIST(root=d)
