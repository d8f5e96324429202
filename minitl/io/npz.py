"""The ``.npz`` codec: a zip of ``<name>.npy`` members, written and read without pickle.

Reading does not go through ``np.load``: it trusts the sizes a member declares
(a 236-byte file claiming a ``(10**12,)`` float64 array asks for 7 TiB) and
accepts any dtype (strings, complex, datetime). Here every member is checked
before a byte of it is allocated: a unique ``<name>.npy`` name, no encryption,
a known compression method, a ``.npy`` header whose dtype is one weight files
hold (bool, u8-u64, i8-i64, f16, f32, f64) and whose shape needs exactly the
bytes the member holds. Each problem is a ``ValueError`` naming the file and
the member. Users go through :mod:`minitl.io`.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib

import numpy as np

from . import safetensors as st

_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_MAX_DEFLATE_RATIO = 1032  # deflate's best case: output bytes per input byte
_MAX_NPY_HEADER = 1 << 16  # np.lib.format's own limit for a .npy header


def write(f, arrays: dict) -> None:
    """Write ``{name: array}`` (NumPy, validated by the caller) as an uncompressed ``.npz`` to ``f``."""
    # Written member by member (as np.savez does) so that any key is allowed,
    # even ones np.savez would take as its own keyword arguments.
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)


def _fail(path, problem: str):
    raise ValueError(f"{os.fspath(path)}: malformed .npz file: {problem}")


def read(path, wanted=None) -> dict:
    """``{name: array}`` of every member (only those in ``wanted`` when given), in file order."""
    if not zipfile.is_zipfile(path):
        _fail(path, "not a zip archive")
    archive_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = _check_directory(path, zf, archive_size)
            return {name: _read_member(path, zf, info) for name, info in infos.items()
                    if wanted is None or name in wanted}
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, RuntimeError, NotImplementedError) as e:
        # RuntimeError: an "encrypted" member; NotImplementedError: a method or
        # version zipfile cannot handle; BadZipFile: a CRC mismatch.
        _fail(path, f"corrupt archive ({type(e).__name__}: {e})")


def _check_directory(path, zf, archive_size: int) -> dict:
    """``{name: ZipInfo}`` after checking every entry of the central directory."""
    infos = {}
    for info in zf.infolist():
        member = info.filename
        if not member.endswith(".npy"):
            _fail(path, f"member {member!r} is not a .npy array")
        name = member[:-len(".npy")]
        if name in infos:
            _fail(path, f"member {member!r} appears twice (the last would silently win)")
        if info.flag_bits & 0x1:
            _fail(path, f"member {member!r} is encrypted")
        if info.compress_type not in _METHODS:
            _fail(path, f"member {member!r} uses compression method {info.compress_type}; "
                        "expected stored (0) or deflate (8)")
        bound = info.compress_size * (_MAX_DEFLATE_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1)
        if info.compress_size > archive_size or info.file_size > bound:
            _fail(path, f"member {member!r} declares {info.file_size} bytes from {info.compress_size} "
                        f"stored bytes in a {archive_size}-byte file")
        infos[name] = info
    return infos


def _read_header(path, member: str, f):
    """``(shape, fortran_order, dtype)`` of an open ``.npy`` member, checked."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except (ValueError, SyntaxError, TypeError, KeyError, EOFError) as e:
        _fail(path, f"member {member!r} has no valid .npy header ({e})")
    supported = dtype.names is None and dtype.subdtype is None and dtype.kind in "biuf"
    if supported:
        try:
            st.dtype_name(dtype)  # e.g. float128 has no place in a weight file
        except ValueError:
            supported = False
    if not supported:
        _fail(path, f"array {member[:-4]!r} cannot be read: it has dtype {dtype}; weight files hold "
                    "bool, u8-u64, i8-i64, f16, f32 and f64 arrays only (never unpickled)")
    return shape, fortran, dtype


def _read_member(path, zf, info) -> np.ndarray:
    member = info.filename
    with zf.open(info) as f:
        shape, fortran, dtype = _read_header(path, member, f)
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        held = info.file_size - f.tell()
        if nbytes != held:
            _fail(path, f"member {member!r} declares shape {shape} of {dtype} ({nbytes} bytes), "
                        f"but holds {held} bytes of data")
        flat = np.empty(math.prod(shape), dtype=dtype)
        view = memoryview(flat).cast("B") if nbytes else None
        got = 0
        while view is not None and got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        if got != nbytes or f.read(1):  # reading to the end checks the member's CRC-32
            _fail(path, f"member {member!r} is truncated or longer than its header says")
    a = flat.reshape(shape, order="F" if fortran else "C")
    if dtype.kind == "b" and a.view(np.uint8).max(initial=0) > 1:
        _fail(path, f"bool member {member!r} holds bytes other than 0 and 1")
    if not dtype.isnative:
        a = a.astype(dtype.newbyteorder("="))
    return a.copy(order="C") if fortran else a  # C order, as np.load gives for our own files
