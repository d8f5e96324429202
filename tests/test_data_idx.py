"""IDX reader: round trips, and every broken file raising a ValueError that names it."""
import gzip
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl.data import read_idx, read_idx_pair, write_idx

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _images(n=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@given(
    dtype=st.sampled_from(IDX_DTYPES),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    compressed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip(tmp_path_factory, dtype, shape, compressed, seed):
    a = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compressed else "a.idx")
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_header_layout_matches_the_format(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    # magic 00 00 08 01, then the count as a big-endian uint32, then the bytes.
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])
    write_idx(path, np.array([[1]], dtype=np.int32))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1])


def test_gzip_is_detected_by_content_not_name(tmp_path):
    a = _images(3)
    raw = tmp_path / "raw"
    write_idx(raw, a)
    disguised = tmp_path / "train-images-idx3-ubyte"  # gzip bytes, no .gz suffix
    disguised.write_bytes(gzip.compress(raw.read_bytes()))
    np.testing.assert_array_equal(read_idx(disguised), a)


def test_truncated_raw_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, _images(5))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"expected {len(data)} bytes, found {len(data) - 100}" in msg


def test_truncated_idx_inside_a_valid_gzip(tmp_path):
    raw = tmp_path / "raw"
    write_idx(raw, _images(5))
    data = raw.read_bytes()
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(ValueError, match=f"truncated.*expected {len(data)} bytes, found {len(data) - 1}"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, _images(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(ValueError, match="longer than its header says.*expected 12 bytes, found 14"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\xff\xd8\xff\xe0", b"\x1f\x00\x08\x03", b"\x00\x01\x08\x03", b"\x00\x00\x07\x03"])
def test_wrong_magic_number(tmp_path, magic):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(magic + bytes(16))
    with pytest.raises(ValueError, match="magic number") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_zero_dimensions_rejected(tmp_path):
    path = tmp_path / "zero"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(ValueError, match="0 dimensions"):
        read_idx(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_empty_gzip_file(tmp_path):
    path = tmp_path / "empty.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(ValueError, match="empty file"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0]))
    with pytest.raises(ValueError, match="truncated header: expected 12 bytes of dimensions, found 6"):
        read_idx(path)


def test_huge_declared_size_fails_before_allocating(tmp_path):
    # 2^32-1 x 2^32-1 x 255 elements declared in a 16-byte file: must not try to allocate.
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\xff" * 8 + bytes([0, 0, 0, 255]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_expected_type_and_rank(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(3, dtype=np.int32))
    with pytest.raises(ValueError, match="expected elements of type uint8, found int32"):
        read_idx(path, dtype=np.uint8)
    with pytest.raises(ValueError, match="expected 3 dimensions, found 1"):
        read_idx(path, ndim=3)


def test_pair_reads_images_and_int64_labels(tmp_path):
    images, labels = _images(6), np.arange(6, dtype=np.uint8) % 3
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l", labels)
    x, y = read_idx_pair(tmp_path / "i.gz", tmp_path / "l")
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


def test_pair_of_different_lengths(tmp_path):
    write_idx(tmp_path / "images", _images(6))
    write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError) as err:
        read_idx_pair(tmp_path / "images", tmp_path / "labels")
    msg = str(err.value)
    assert os.fspath(tmp_path / "images") in msg and os.fspath(tmp_path / "labels") in msg
    assert "6 images" in msg and "5 labels" in msg


def test_pair_with_swapped_files(tmp_path):
    write_idx(tmp_path / "images", _images(2))
    write_idx(tmp_path / "labels", np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 3 dimensions, found 1"):
        read_idx_pair(tmp_path / "labels", tmp_path / "images")


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
