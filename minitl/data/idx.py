"""The IDX file format (MNIST and its cousins), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the elements, big-endian, row-major. We check
every part of that against what the file holds, so a truncated download or a
swapped file fails here with a message naming the file, rather than later as a
reshape error or a silently wrong dataset.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from .tar import read_exact  # the same bounded read loop

# IDX element-type byte -> NumPy dtype (big-endian, as stored).
IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate's best case is about 1032 output bytes per input byte: a header
# claiming more than that many times the compressed file is a lie.
_MAX_DEFLATE_RATIO = 1032


def _open(path: str):
    """A binary file object, transparently gunzipping; gzip is sniffed, not guessed from the name."""
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def _readinto_exact(f, buf: memoryview) -> int:
    """Fill ``buf`` from ``f``; the number of bytes actually read."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def read_idx(path, dtype=None, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian, writable NumPy array.

    ``dtype`` and ``ndim``, when given, are what the caller expects (e.g.
    ``np.uint8`` and 3 for an image file); a file holding something else raises.
    Every problem raises ``ValueError`` naming the file and saying what was
    expected and what was found: an empty file, a wrong magic number, an
    unknown element type, a file shorter (truncated) or longer than its header
    says, or a corrupt gzip stream.
    """
    path = os.fspath(path)
    try:
        with _open(path) as f:
            return _parse(f, path, dtype, ndim)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # A gzip stream cut short ends in EOFError; a damaged one in zlib.error.
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def _parse(f, path: str, dtype, ndim: int | None) -> np.ndarray:
    """Check the header and read the body of an open IDX stream."""
    magic = read_exact(f, 4)
    if len(magic) < 4:
        what = "an empty file" if not magic else f"{len(magic)} bytes"
        raise ValueError(f"{path}: expected a 4-byte IDX magic number, found {what}")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
        raise ValueError(
            f"{path}: wrong magic number {magic.hex()}; expected 0000TTDD with "
            f"type TT in {{{', '.join(f'{c:02x}' for c in IDX_TYPES)}}} (not an IDX file?)"
        )
    stored, dims_n = IDX_TYPES[magic[2]], magic[3]
    if dims_n == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    if dtype is not None and stored.newbyteorder("=") != np.dtype(dtype):
        raise ValueError(f"{path}: expected elements of type {np.dtype(dtype)}, found {stored.newbyteorder('=')}")
    if ndim is not None and dims_n != ndim:
        raise ValueError(f"{path}: expected {ndim} dimensions, found {dims_n}")

    raw_dims = read_exact(f, 4 * dims_n)
    if len(raw_dims) < 4 * dims_n:
        raise ValueError(
            f"{path}: truncated header: expected {4 * dims_n} bytes of dimensions, found {len(raw_dims)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    header = 4 + 4 * dims_n
    body = math.prod(shape) * stored.itemsize  # Python ints: no overflow on hostile headers

    if isinstance(f, gzip.GzipFile):
        # The decompressed size is only known by reading. Allocate what the
        # header declares, bounded by what the compressed file could hold
        # (deflate expands at most ~1032:1), and inflate at most one byte past
        # it: a gzip bomb costs no more memory than the array it claims to be.
        limit = os.fstat(f.fileobj.fileno()).st_size * _MAX_DEFLATE_RATIO
        if body > limit:
            raise ValueError(
                f"{path}: header declares shape {shape} ({body} bytes), more than a "
                f"{limit // _MAX_DEFLATE_RATIO}-byte gzip file can hold (corrupt header?)"
            )
        out = np.empty(shape, dtype=stored)
        got = _readinto_exact(f, memoryview(out).cast("B")) if body else 0
        if got < body:
            _size_error(path, shape, header + body, header + got)
        # One byte more: none may be there. Reaching the end also checks the
        # gzip trailer (CRC-32 and length), so a flipped bit is refused.
        if f.read(1):
            raise ValueError(f"{path}: file is longer than its header says: header declares shape "
                             f"{shape}, so expected {header + body} bytes once inflated, found more")
    else:
        # Raw files: compare sizes before allocating anything.
        found = os.fstat(f.fileno()).st_size
        if found != header + body:
            _size_error(path, shape, header + body, found)
        out = np.empty(shape, dtype=stored)
        got = _readinto_exact(f, memoryview(out).cast("B")) if body else 0
        if got < body:  # the file shrank while we read it
            _size_error(path, shape, header + body, header + got)
    # Native byte order so downstream arithmetic is not slowed by byte swapping.
    return out.astype(stored.newbyteorder("="), copy=False) if stored.itemsize > 1 else out


def _size_error(path: str, shape, expected: int, found: int):
    """Raise the size mismatch error (truncated or with trailing bytes)."""
    kind = "truncated" if found < expected else "longer than its header says"
    raise ValueError(
        f"{path}: file is {kind}: header declares shape {shape}, "
        f"so expected {expected} bytes, found {found}"
    )


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    The element type must be one IDX can hold (uint8, int8, int16, int32,
    float32, float64); anything else raises ``ValueError``.
    """
    path = os.fspath(path)
    a = np.asarray(array)
    code = _TYPE_CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"{path}: IDX cannot store dtype {a.dtype}; use one of {sorted(map(str, _TYPE_CODES))}")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"{path}: IDX needs 1 to 255 dimensions, got {a.ndim}")
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(a, dtype=IDX_TYPES[code]).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(body)


def read_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Read an image file (uint8, 3-D) and its label file (uint8, 1-D).

    Returns ``(images, labels)`` with labels as int64. Files of different
    lengths raise ``ValueError`` naming both files and both counts.
    """
    images = read_idx(images_path, dtype=np.uint8, ndim=3)
    labels = read_idx(labels_path, dtype=np.uint8, ndim=1)
    if len(images) != len(labels):
        raise ValueError(
            f"image and label files have different lengths: {os.fspath(images_path)} holds "
            f"{len(images)} images, {os.fspath(labels_path)} holds {len(labels)} labels; "
            f"expected equal counts"
        )
    return images, labels.astype(np.int64)
