"""The safetensors codec, written from the format's specification.

Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then
the tensors' bytes (C order, little-endian). The JSON maps each name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
data section) plus an optional ``"__metadata__"`` map of strings.

We write what the reference implementation (the ``safetensors`` Rust crate)
writes for the same input: tensors sorted by dtype rank descending (its
``Dtype`` enum order, which puts wider types first so every tensor starts
aligned), then by name; compact JSON with ``__metadata__`` first; the header
padded with spaces to a multiple of 8. The reference keeps metadata in a hash
map, so with several metadata keys its order is arbitrary; ours is sorted.

Reading checks everything before trusting it and raises ``ValueError`` naming
the file and the problem. Users go through :mod:`minitl.io`.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

METADATA_KEY = "__metadata__"
# The reference reader's limit; a real header is a few MB at most.
MAX_HEADER_SIZE = 100_000_000

# name -> NumPy dtype (little-endian), in the reference crate's Dtype enum order:
# the position is the sort rank used when writing.
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
_RANK = {name: i for i, name in enumerate(DTYPES)}
_NAME_OF = {dt.newbyteorder("="): name for name, dt in DTYPES.items()}
# Valid in the format but with no NumPy equivalent: named so the error can say so.
_UNSUPPORTED = {"BF16", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                "F4", "F6_E2M3", "F6_E3M2", "C64"}


def dtype_name(dtype) -> str:
    """The safetensors name of a NumPy dtype (``float32`` -> ``'F32'``)."""
    name = _NAME_OF.get(np.dtype(dtype).newbyteorder("="))
    if name is None:
        raise ValueError(f"dtype {np.dtype(dtype)} cannot be stored in safetensors "
                         f"(supported: {', '.join(DTYPES)})")
    return name


def encode_header(arrays: dict, metadata: dict | None) -> tuple[bytes, list[str]]:
    """The padded JSON header and the order the tensors' bytes follow it in."""
    order = sorted(arrays, key=lambda k: (-_RANK[dtype_name(arrays[k].dtype)], k))
    header = {}
    if metadata is not None:
        header[METADATA_KEY] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name in order:
        a = arrays[name]
        header[name] = {"dtype": dtype_name(a.dtype), "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    # serde_json's compact form: no spaces, non-ASCII kept as UTF-8.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * (-len(text) % 8), order


def write(f, arrays: dict, metadata: dict | None) -> None:
    """Write ``arrays`` (NumPy, validated by the caller) as safetensors to file ``f``."""
    header, order = encode_header(arrays, metadata)
    f.write(len(header).to_bytes(8, "little"))
    f.write(header)
    for name in order:
        a = arrays[name]
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        f.write(a.reshape(-1).view(np.uint8))


def _fail(path, problem: str):
    raise ValueError(f"{os.fspath(path)}: malformed safetensors file: {problem}")


def _unique_object(pairs):
    # json.loads would silently keep the last of two equal keys.
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _is_utf8(text: str) -> bool:
    # JSON's "\\ud800" escape decodes to a lone surrogate, which is not Unicode
    # text; the reference reader (serde_json) refuses it, so we do too.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def read_header(f, path, file_size: int) -> tuple[dict, dict, int]:
    """Parse and check the header: ``(entries, metadata, data_start)``.

    ``entries`` maps name -> (dtype, shape, begin, end), in offset order;
    every check against the data section's size is done here.
    """
    head = f.read(8)
    if len(head) < 8:
        _fail(path, f"file is {file_size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_SIZE:
        _fail(path, f"bad header length {n}: over the {MAX_HEADER_SIZE}-byte limit")
    if n > file_size - 8:
        _fail(path, f"bad header length {n}: longer than the {file_size - 8} bytes "
                    "that follow it")
    raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(path, f"header is not valid UTF-8 ({e.reason} at byte {e.start})")
    if not text.startswith("{"):
        _fail(path, "header is not a JSON object (it must begin with '{')")
    try:
        header = json.loads(text, object_pairs_hook=_unique_object)
    except (ValueError, RecursionError) as e:
        _fail(path, f"header is invalid JSON: {e}")
    if not isinstance(header, dict):
        _fail(path, "header is not a JSON object")

    metadata = header.pop(METADATA_KEY, None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        _fail(path, f"{METADATA_KEY} is not a map of strings")
    for k, v in metadata.items():
        if not isinstance(v, str):
            _fail(path, f"{METADATA_KEY} value for {k!r} is {type(v).__name__}, not a string")
        if not (_is_utf8(k) and _is_utf8(v)):
            _fail(path, f"{METADATA_KEY} entry {k!r} holds a lone UTF-16 surrogate, not Unicode text")

    entries = {}
    for name, info in header.items():
        if not _is_utf8(name):
            _fail(path, f"tensor name {name!r} holds a lone UTF-16 surrogate, not Unicode text")
        if not isinstance(info, dict):
            _fail(path, f"entry for tensor {name!r} is not an object")
        if set(info) != {"dtype", "shape", "data_offsets"}:
            _fail(path, f"tensor {name!r} must have exactly dtype, shape and data_offsets "
                        f"(has {sorted(info)})")
        dt, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str):
            _fail(path, f"tensor {name!r} has dtype {dt!r}, not a string such as 'F32'")
        if dt in _UNSUPPORTED:
            _fail(path, f"tensor {name!r} has dtype {dt}, which NumPy cannot represent")
        if dt not in DTYPES:
            _fail(path, f"tensor {name!r} has unknown dtype {dt!r}")
        if not isinstance(shape, list) or not all(_count(d) for d in shape):
            _fail(path, f"tensor {name!r} has shape {shape!r}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_count, offsets))):
            _fail(path, f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        entries[name] = (DTYPES[dt], tuple(shape), offsets[0], offsets[1])

    # The spec: offsets lie inside the data section, cover it exactly, never overlap.
    data_size = file_size - 8 - n
    expected, previous = 0, None
    ordered = sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3]))
    for name, (dt, shape, begin, end) in ordered:
        if begin > end:
            _fail(path, f"tensor {name!r} has data_offsets [{begin}, {end}] with begin > end")
        if end > data_size:
            _fail(path, f"tensor {name!r} data_offsets [{begin}, {end}] out of range: "
                        f"the data section holds {data_size} bytes")
        if begin < expected:
            _fail(path, f"tensor {name!r} data_offsets [{begin}, {end}] overlap "
                        f"tensor {previous!r}")
        if begin > expected:
            _fail(path, f"hole in the data section: bytes [{expected}, {begin}) belong "
                        "to no tensor")
        nbytes = math.prod(shape) * dt.itemsize
        if end - begin != nbytes:
            _fail(path, f"tensor {name!r} size mismatch: shape {list(shape)} of "
                        f"{dt.itemsize}-byte elements needs {nbytes} bytes, "
                        f"data_offsets give {end - begin}")
        expected, previous = end, name
    if expected != data_size:
        _fail(path, f"hole in the data section: bytes [{expected}, {data_size}) belong "
                    "to no tensor")
    return dict(ordered), metadata, 8 + n


def read(f, path, file_size: int, with_arrays: bool = True) -> tuple[dict, dict]:
    """Read a whole safetensors file from ``f``: ``(arrays, metadata)``."""
    entries, metadata, _ = read_header(f, path, file_size)
    arrays = {}
    if not with_arrays:
        return arrays, metadata
    # Offsets are contiguous and in order, so one sequential pass reads everything,
    # straight into fresh (aligned, writable) arrays.
    for name, (dt, shape, begin, end) in entries.items():
        a = np.empty(shape, dtype=dt)
        got = f.readinto(a.reshape(-1).view(np.uint8)) if end > begin else 0
        if got != end - begin:
            _fail(path, f"file truncated inside tensor {name!r}")
        if dt.kind == "b" and a.view(np.uint8).max(initial=0) > 1:
            _fail(path, f"BOOL tensor {name!r} holds bytes other than 0 and 1")
        arrays[name] = a if dt.isnative else a.astype(dt.newbyteorder("="))
    return arrays, metadata
