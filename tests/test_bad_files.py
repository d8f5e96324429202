"""Issue 14's readers: each misbehaviour found by fuzzing, rebuilt from a small generated file.

Every bad file must raise one ``ValueError`` naming the file (and the member
or field), never a ``MemoryError``, ``KeyError``, ``tarfile.ReadError`` or a
silently different result, and must cost no more memory than the array it
declares.
"""
from __future__ import annotations

import gzip
import io as pyio
import json
import re
import struct
import tarfile
import tracemalloc
import zipfile

import numpy as np
import pytest

from minitl import io as mio
from minitl.data import read_idx, write_idx
from minitl.data.cifar import RECORD, read_cifar_archive


def peak_bytes(fn):
    """(result or exception, peak traced allocation in bytes) of calling ``fn``."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - returned for the caller to check
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -------------------------------------------------------------------- 1. IDX
def _idx_bomb(path, inflated: int):
    header = bytes([0, 0, 0x08, 3]) + np.array([1, 28, 28], ">u4").tobytes()
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        chunk = bytes(1 << 20)
        for _ in range(inflated >> 20):
            f.write(chunk)


def test_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    p = tmp_path / "bomb-idx3-ubyte.gz"
    _idx_bomb(p, 64 << 20)  # 64 MiB of zeros behind a 1x28x28 header: a ~65 kB file
    assert p.stat().st_size < 100_000
    err, peak = peak_bytes(lambda: read_idx(p))
    assert isinstance(err, ValueError) and str(p) in str(err) and "longer than its header" in str(err)
    assert peak < 4 << 20, f"reading a 1x28x28 header inflated {peak} bytes"


def test_idx_gzip_header_larger_than_the_file_can_hold(tmp_path):
    p = tmp_path / "huge-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + np.array([60000, 4096, 4096], ">u4").tobytes())
    err, peak = peak_bytes(lambda: read_idx(p))
    assert isinstance(err, ValueError) and "more than a" in str(err) and str(p) in str(err)
    assert peak < 1 << 20


def test_idx_gzip_flipped_bit_fails_the_crc(tmp_path):
    p = tmp_path / "x-idx1-ubyte.gz"
    write_idx(p, np.arange(200, dtype=np.uint8))
    raw = bytearray(p.read_bytes())
    raw[-5] ^= 0x01  # inside the trailer's CRC-32
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*corrupt or truncated gzip"):
        read_idx(p)


# ------------------------------------------------------------------ 2. CIFAR
def _batch(n=2, seed=0):
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (n, RECORD), dtype=np.uint8)
    records[:, 0] = rng.integers(0, 10, n)
    return records.tobytes()


def _tar_bytes(members, fmt=tarfile.USTAR_FORMAT, mode="w:gz"):
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, pyio.BytesIO(data))
    return buf.getvalue()


MEMBER = "cifar-10-batches-bin/test_batch.bin"


def test_cifar_archive_round_trip_and_long_names(tmp_path):
    data = _batch(3)
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        p = tmp_path / f"a{fmt}.tar.gz"
        # a long sibling name forces a GNU 'L' / pax 'x' record before the member we read
        p.write_bytes(_tar_bytes({"cifar-10-batches-bin/" + "sub/" * 30 + "x": b"x", MEMBER: data}, fmt))
        images, labels = read_cifar_archive(p, ["test_batch.bin"])
        assert images.shape == (3, 3, 32, 32) and labels.tolist() == list(data[::RECORD])


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (bytes(range(256)) * 8, "bad header checksum"),
    (b"PK\x03\x04" + bytes(20), "truncated header"),
    (gzip.compress(b"\x00" * 100), "truncated header"),
])
def test_cifar_archive_not_a_tar(tmp_path, content, problem):
    p = tmp_path / "c.tar.gz"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*" + problem):
        read_cifar_archive(p, ["test_batch.bin"])


def test_cifar_archive_that_is_a_zip(tmp_path):
    p = tmp_path / "c.tar.gz"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr(MEMBER, _batch())
    with pytest.raises(ValueError, match=re.escape(str(p)) + ": not a readable tar archive"):
        read_cifar_archive(p, ["test_batch.bin"])


def test_cifar_archive_truncated(tmp_path):
    p = tmp_path / "c.tar.gz"
    whole = _tar_bytes({MEMBER: _batch(4)})
    for cut in (len(whole) // 3, len(whole) - 9):
        p.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=re.escape(str(p)) + ".*(truncated|corrupt)"):
            read_cifar_archive(p, ["test_batch.bin"])


@pytest.mark.parametrize("kind", [b"x", b"L"])
def test_cifar_archive_huge_extended_header(tmp_path, kind):
    header = bytearray(512)
    header[:9] = b"././@Long"
    header[100:108] = b"0000644\0"
    header[124:136] = b"%011o\0" % (1 << 40)
    header[156:157] = kind
    header[257:263] = b"ustar\0"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    p = tmp_path / "c.tar"
    p.write_bytes(bytes(header) + bytes(1024))
    err, peak = peak_bytes(lambda: read_cifar_archive(p, ["test_batch.bin"]))
    assert isinstance(err, ValueError) and str(p) in str(err) and "declares" in str(err), err
    assert peak < 1 << 20


def test_cifar_archive_flipped_bit_in_the_deflate_data(tmp_path):
    p = tmp_path / "c.tar.gz"
    good = _tar_bytes({MEMBER: _batch(8)})
    p.write_bytes(good)
    reference = read_cifar_archive(p, ["test_batch.bin"])[0]
    refused = 0
    for at in range(20, len(good) - 8, max(1, len(good) // 40)):
        bad = bytearray(good)
        bad[at] ^= 0x10
        p.write_bytes(bytes(bad))
        try:
            images = read_cifar_archive(p, ["test_batch.bin"])[0]
        except ValueError as e:
            assert str(p) in str(e)
            refused += 1
        else:  # never different pixels silently
            assert np.array_equal(images, reference), f"flipped bit at byte {at} accepted with other pixels"
    assert refused > 0


def test_cifar_official_archive_name_and_size_needs_the_official_sha(tmp_path, monkeypatch):
    import dataclasses

    from minitl.data import CIFAR10, catalog

    p = tmp_path / "cifar-10-binary.tar.gz"
    p.write_bytes(_tar_bytes({MEMBER: _batch(2)}))
    info = catalog.CATALOG["cifar-10"]
    fake = dataclasses.replace(info.remote[0], size=p.stat().st_size, sha256="0" * 64)
    monkeypatch.setitem(catalog.CATALOG, "cifar-10", dataclasses.replace(info, remote=(fake,)))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    with pytest.raises(ValueError, match=re.escape(str(p)) + ": SHA-256 mismatch"):
        CIFAR10(root=tmp_path, train=False)


# ------------------------------------------------------------ 3. safetensors
def _st(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize("header, problem", [
    (b'{"a":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', "dtype \\['F32'\\], not a string"),
    (b'{"a":{"dtype":{"F":1},"shape":[1],"data_offsets":[0,4]}}', "not a string"),
    (b'{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', "lone UTF-16 surrogate"),
    (b'{"__metadata__":{"k":"\\udfff"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
     "lone UTF-16 surrogate"),
])
def test_safetensors_header_field_types(tmp_path, header, problem):
    p = tmp_path / "w.safetensors"
    p.write_bytes(_st(header, b"\0" * 4))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*" + problem):
        mio.load(p)


# ------------------------------------------------------------------- 4. npz
def _npz_member(header: dict, data: bytes = b"", version=(1, 0)) -> bytes:
    buf = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header) if version == (1, 0) else \
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue() + data


def _zip(members, method=zipfile.ZIP_STORED) -> bytes:
    buf = pyio.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def test_npz_declared_shape_larger_than_the_member(tmp_path):
    p = tmp_path / "w.npz"
    p.write_bytes(_zip([("w.npy", _npz_member({"descr": "<f8", "fortran_order": False, "shape": (10**12,)}))]))
    assert p.stat().st_size < 400
    err, peak = peak_bytes(lambda: mio.load(p))
    assert isinstance(err, ValueError)
    assert re.search(re.escape(str(p)) + r".*member 'w.npy' declares shape \(1000000000000,\)", str(err)), err
    assert peak < 1 << 20


def _patch_zip(raw: bytes, local_off: int, central_off_from_sig: int, value: bytes) -> bytes:
    """Overwrite a field in the local header and in the central directory entry."""
    out = bytearray(raw)
    out[local_off:local_off + len(value)] = value
    central = out.find(b"PK\x01\x02")
    out[central + central_off_from_sig:central + central_off_from_sig + len(value)] = value
    return bytes(out)


@pytest.mark.parametrize("local, central, value, problem", [
    (6, 8, b"\x01\x00", "encrypted"),                        # general-purpose flag bit 0
    (8, 10, b"\x63\x00", "compression method 99"),           # AES / unknown method
    (4, 6, b"\xff\x00", "corrupt archive|version"),           # version needed to extract: 25.5
])
def test_npz_zip_flags(tmp_path, local, central, value, problem):
    p = tmp_path / "w.npz"
    mio.save({"w": np.arange(3.0)}, p)
    p.write_bytes(_patch_zip(p.read_bytes(), local, central, value))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ": malformed .npz file: .*(" + problem + ")"):
        mio.load(p)


@pytest.mark.parametrize("array", [
    np.ones(2, np.complex64), np.array(["1.5"]), np.array(["2020-01-01"], "datetime64[D]"),
    np.ones(2, np.longdouble), np.zeros(2, [("a", "<f4")]),
], ids=["complex64", "str", "datetime64", "float128", "struct"])
def test_npz_refuses_dtypes_weight_files_do_not_hold(tmp_path, array):
    if array.dtype == np.float64:  # longdouble is float64 on some platforms
        pytest.skip("longdouble is float64 here")
    p = tmp_path / "w.npz"
    buf = pyio.BytesIO()
    np.lib.format.write_array(buf, array)
    p.write_bytes(_zip([("w.npy", buf.getvalue())]))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*array 'w' cannot be read: it has dtype"):
        mio.load(p)


def test_npz_refuses_two_members_with_one_name(tmp_path):
    p = tmp_path / "w.npz"
    one, two = (pyio.BytesIO(), pyio.BytesIO())
    np.lib.format.write_array(one, np.zeros(2))
    np.lib.format.write_array(two, np.ones(2))
    with pytest.warns(UserWarning, match="Duplicate name"):
        p.write_bytes(_zip([("w.npy", one.getvalue()), ("w.npy", two.getvalue())]))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*member 'w.npy' appears twice"):
        mio.load(p)


def test_npz_deflated_members_and_big_endian_still_load(tmp_path):
    p = tmp_path / "w.npz"
    np.savez_compressed(p, a=np.arange(6, dtype=">f4").reshape(2, 3), b=np.asfortranarray(np.eye(3)))
    out = mio.load(p)
    assert out["a"].dtype == np.float32 and out["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert np.array_equal(out["b"], np.eye(3))


def test_npz_flipped_data_byte_fails_the_crc(tmp_path):
    p = tmp_path / "w.npz"
    mio.save({"w": np.arange(64.0)}, p)
    raw = bytearray(p.read_bytes())
    raw[raw.find(b"\x00\x00\x00\x00\x00\x00\xf0?")] ^= 0x01  # inside the float 1.0
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*(CRC|corrupt)"):
        mio.load(p)


# -------------------------------------------------------------- 9. modules
def test_load_state_dict_of_a_list_says_it_wants_a_mapping():
    from minitl.models import MLP

    with pytest.raises(TypeError, match="wants a mapping of parameter names to arrays.*not list"):
        MLP(4, (3,), 2).load_state_dict([np.ones(3)])


def test_zlib_error_is_not_leaked_by_idx(tmp_path):
    p = tmp_path / "z-idx1-ubyte.gz"
    good = gzip.compress(bytes([0, 0, 8, 1]) + np.array([50], ">u4").tobytes() + bytes(50))
    bad = bytearray(good)
    bad[12] ^= 0xFF
    p.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=re.escape(str(p))):
        read_idx(p)  # not a zlib.error
