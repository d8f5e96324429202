"""CIFAR-10 binary reader and the CIFAR10 dataset, on files the tests write."""
import io
import tarfile

import numpy as np
import pytest

from minitl.data import CIFAR10, DatasetNotFoundError, read_cifar_batch, write_cifar_batch
from minitl.data.cifar import RECORD, read_cifar_archive

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.fixture
def no_cifar_elsewhere(tmp_path, monkeypatch):
    """Keep the real cache and $MINITL_DATA out of the search."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINITL_DATA", raising=False)


def _write_cifar_dir(directory, sizes=(3, 2, 4, 1, 2), test_size=5, meta=True):
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, n in enumerate(sizes, start=1):
        x, y = _batch(n, seed=i)
        write_cifar_batch(directory / f"data_batch_{i}.bin", x, y)
        parts.append((x, y))
    x, y = _batch(test_size, seed=99)
    write_cifar_batch(directory / "test_batch.bin", x, y)
    if meta:
        (directory / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, (x, y)


def test_record_layout_is_label_then_rgb_planes(tmp_path):
    img = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    img[0, 0, 0, 1] = 11  # red, row 0, column 1
    img[0, 1, 2, 0] = 22  # green, row 2, column 0
    img[0, 2, 31, 31] = 33  # blue, last pixel
    write_cifar_batch(tmp_path / "b.bin", img, [7])
    raw = (tmp_path / "b.bin").read_bytes()
    assert len(raw) == RECORD and raw[0] == 7
    assert raw[1 + 1] == 11 and raw[1 + 1024 + 2 * 32] == 22 and raw[RECORD - 1] == 33
    x, y = read_cifar_batch(tmp_path / "b.bin")
    np.testing.assert_array_equal(x, img)
    assert y.dtype == np.int64 and y.tolist() == [7]


def test_round_trip(tmp_path):
    x, y = _batch(17, seed=0)
    write_cifar_batch(tmp_path / "b.bin", x, y)
    x2, y2 = read_cifar_batch(tmp_path / "b.bin")
    assert x2.shape == (17, 3, 32, 32) and x2.dtype == np.uint8 and x2.flags.writeable
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_truncated_file(tmp_path):
    x, y = _batch(2, seed=0)
    path = tmp_path / "data_batch_1.bin"
    write_cifar_batch(path, x, y)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="not a whole number of 3073-byte records") as err:
        read_cifar_batch(path)
    assert str(path) in str(err.value) and f"expected {RECORD} or {2 * RECORD} bytes" in str(err.value)


def test_empty_file(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file") as err:
        read_cifar_batch(path)
    assert str(path) in str(err.value)


def test_label_out_of_range(tmp_path):
    x, y = _batch(3, seed=0)
    path = tmp_path / "b.bin"
    write_cifar_batch(path, x, [1, 2, 10])
    with pytest.raises(ValueError, match="record 2 has label 10; expected 0..9"):
        read_cifar_batch(path)


def test_dataset_from_directory(tmp_path, no_cifar_elsewhere):
    (train_x, train_y), (test_x, test_y) = _write_cifar_dir(tmp_path / "cifar")
    train = CIFAR10(root=tmp_path / "cifar")
    assert len(train) == 12 and train.images.dtype == np.uint8 and train.shape == (3, 32, 32)
    np.testing.assert_array_equal(train.images, train_x)  # batches 1..5, in order
    np.testing.assert_array_equal(train.labels, train_y)
    assert train.classes == NAMES
    test = CIFAR10(root=tmp_path / "cifar", train=False)
    np.testing.assert_array_equal(test.images, test_x)


def test_dataset_finds_the_unpacked_subdirectory(tmp_path, no_cifar_elsewhere):
    _write_cifar_dir(tmp_path / "data" / "cifar-10-batches-bin", meta=False)
    ds = CIFAR10(root=tmp_path / "data", train=False)
    assert len(ds) == 5 and ds.classes == NAMES  # default names without batches.meta.txt


def test_dataset_reads_the_archive_in_place(tmp_path, no_cifar_elsewhere):
    src = tmp_path / "src"
    (train_x, _), _ = _write_cifar_dir(src)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as tar:
        for f in sorted(src.iterdir()):
            tar.add(f, arcname=f"cifar-10-batches-bin/{f.name}")
    ds = CIFAR10(root=root)
    np.testing.assert_array_equal(ds.images, train_x)
    assert not (root / "cifar-10-batches-bin").exists()  # read, not unpacked


def test_archive_missing_member(tmp_path):
    buf = io.BytesIO(b"\x00" * RECORD)
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = RECORD
        tar.addfile(info, buf)
    with pytest.raises(ValueError, match="data_batch_1.bin"):
        read_cifar_archive(tmp_path / "a.tar.gz", ["data_batch_1.bin"])


def test_missing_batch_is_reported(tmp_path, no_cifar_elsewhere):
    _write_cifar_dir(tmp_path / "cifar")
    (tmp_path / "cifar" / "data_batch_3.bin").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        CIFAR10(root=tmp_path / "cifar")
    msg = str(err.value)
    assert "missing data_batch_3.bin" in msg and "CIFAR10(download=True)" in msg
    assert str(tmp_path / "cifar") in msg
