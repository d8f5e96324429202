"""CIFAR-10's binary version, read without pickle.

Each record is 1 label byte followed by 3072 pixel bytes: the 1024 red, then
the 1024 green, then the 1024 blue values of a 32x32 image, row-major. That is
already (C, H, W) order, so a whole batch file is one ``reshape``.

We read the binary version rather than the "python version" because that one
is a pickle, and unpickling a downloaded file can run arbitrary code.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from .tar import read_members

RECORD = 1 + 3 * 32 * 32  # bytes per image: one label byte, then the pixels
NUM_CLASSES = 10
# A batch file holds 10,000 records (30.7 MB); anything much larger is not CIFAR-10.
MAX_MEMBER = 64 << 20


def parse_cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Split the bytes of one batch file into ``(images, labels)``.

    ``images`` is uint8 ``(N, 3, 32, 32)``, ``labels`` int64 ``(N,)``. ``source``
    names the file in errors: an empty file, a size that is not a whole number
    of records (a truncated file), or a label outside 0..9 raise ``ValueError``.
    """
    if len(data) == 0:
        raise ValueError(f"{source}: empty file; expected records of {RECORD} bytes")
    if len(data) % RECORD:
        raise ValueError(
            f"{source}: size {len(data)} bytes is not a whole number of {RECORD}-byte records "
            f"(1 label byte + 3072 pixel bytes); expected {len(data) // RECORD * RECORD} "
            f"or {(len(data) // RECORD + 1) * RECORD} bytes (truncated file?)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    bad = labels >= NUM_CLASSES
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{source}: record {i} has label {labels[i]}; expected 0..{NUM_CLASSES - 1} "
            f"(not a CIFAR-10 binary file?)"
        )
    # One copy: contiguous, writable images without the label column.
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    return images, labels


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file (e.g. ``data_batch_1.bin``)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return parse_cifar_batch(f.read(), path)


def read_cifar_batches(paths) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate several batch files, in the order given."""
    parts = [read_cifar_batch(p) for p in paths]
    return _concat(parts)


def read_cifar_archive(archive, names, folder: str = "cifar-10-batches-bin"):
    """Read batch files straight out of ``cifar-10-binary.tar.gz``, without unpacking it.

    Only members called ``<folder>/<name>`` are read, and only as bytes, so a
    hostile archive cannot write anywhere. A damaged archive (not a tar, a
    truncated or bit-flipped gzip stream, oversized headers) raises
    ``ValueError`` naming the file (:mod:`minitl.data.tar`).
    """
    members = _members(archive, names, folder)
    parts = [parse_cifar_batch(members[name], f"{os.fspath(archive)}:{folder}/{name}") for name in names]
    return _concat(parts)


def read_cifar_class_names(path) -> tuple[str, ...] | None:
    """Class names from ``batches.meta.txt`` (one per line), or None if unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            names = tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError):
        return None
    return names if len(names) == NUM_CLASSES else None


def write_cifar_batch(path, images, labels) -> None:
    """Write ``images`` (uint8 ``(N, 3, 32, 32)``) and ``labels`` as a CIFAR-10 binary file."""
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels)
    if images.shape[1:] != (3, 32, 32) or len(images) != len(labels):
        raise ValueError(f"expected images (N, 3, 32, 32) and N labels, got {images.shape} and {labels.shape}")
    records = np.empty((len(images), RECORD), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(len(images), -1)
    with open(os.fspath(path), "wb") as f:
        f.write(records.tobytes())


def extract_cifar_archive(archive, dest_dir, names, folder: str = "cifar-10-batches-bin") -> None:
    """Unpack only the named members of the archive into ``dest_dir`` (flat).

    Each file is written to a temporary directory beside ``dest_dir`` and then
    renamed into place, so an interrupted unpack never leaves a partial file
    under a final name. Member names are fixed by us, never taken from the
    archive, so it cannot write outside ``dest_dir``.
    """
    dest_dir = os.fspath(dest_dir)
    members = _members(archive, names, folder)  # the whole archive checked before anything is written
    os.makedirs(dest_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=dest_dir)
    try:
        for name in names:
            with open(os.path.join(tmp, name), "wb") as out:
                out.write(members[name])
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(dest_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _members(archive, names, folder: str) -> dict:
    """``{name: bytes}`` of ``<folder>/<name>`` for every name, or ValueError naming the archive."""
    found = read_members(archive, [f"{folder}/{name}" for name in names], MAX_MEMBER)
    for name in names:
        if f"{folder}/{name}" not in found:
            raise ValueError(f"{os.fspath(archive)}: expected a regular file {folder}/{name} "
                             "in the archive, found none")
    return {name: found[f"{folder}/{name}"] for name in names}


def _concat(parts):
    """Concatenate ``[(images, labels), ...]``."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
