"""Weight files: ``.npz`` (never pickled) and ``.safetensors``, chosen by suffix.

    save(state_dict, "lenet.safetensors", metadata=provenance(dataset="fashion-mnist",
         classes="0-4", seed=0, steps=1200))
    weights = load("lenet.safetensors")
    weights, meta = load_with_metadata("lenet.safetensors")

A state_dict is a flat ``{dotted.name: array}``; values may be NumPy or CuPy
arrays or minitl Tensors (anything with ``.numpy()``), and are written from host
memory. Both formats hold the same dtypes (bool, u8-u64, i8-i64, f16, f32, f64)
and a metadata map of strings. Writes are atomic: the file under the final
name is either the old one or the complete new one. A malformed file raises
``ValueError`` naming the file and the problem.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import numpy as np

from ..core.version import __version__
from . import npz
from .atomic import atomic_write
from . import safetensors as st

METADATA_KEY = st.METADATA_KEY  # reserved name, in both formats
FORMATS = (".npz", ".safetensors")


def _format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{os.fspath(path)}: unknown weight-file suffix {suffix!r} "
                         f"(use {' or '.join(FORMATS)})")
    return suffix


def _to_host(name, value) -> np.ndarray:
    # minitl Tensors and Parameters expose .numpy(); CuPy arrays copy to host with .get().
    if not isinstance(value, np.ndarray) and callable(getattr(value, "numpy", None)):
        value = value.numpy()
    if type(value).__module__.split(".")[0] == "cupy":
        value = value.get()
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"state_dict[{name!r}] has dtype {a.dtype}; weight files hold "
                         "bool, integer and float arrays only")
    st.dtype_name(a.dtype)  # raises for e.g. float128
    return a


def _check_metadata(metadata) -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict of strings, not {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"metadata must map strings to strings; {k!r}: {v!r} does not "
                             "(see minitl.io.provenance)")
    return dict(metadata)


def _host_state_dict(state_dict) -> dict:
    if callable(getattr(state_dict, "state_dict", None)):  # a Module was passed
        state_dict = state_dict.state_dict()
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise ValueError(f"state_dict keys must be strings, not {name!r}")
        if name == METADATA_KEY:
            raise ValueError(f"{METADATA_KEY!r} is reserved for metadata; rename that entry")
        arrays[name] = _to_host(name, value)
    return arrays


def _write_npz(f, arrays: dict, metadata: dict | None) -> None:
    # Metadata rides along as a uint8 member of UTF-8 JSON.
    if metadata is not None:
        text = json.dumps(metadata, sort_keys=True, ensure_ascii=False)
        arrays = {**arrays, METADATA_KEY: np.frombuffer(text.encode("utf-8"), np.uint8)}
    npz.write(f, arrays)


def save(state_dict, path, metadata: dict | None = None) -> None:
    """Write ``state_dict`` to ``path`` (``.npz`` or ``.safetensors``), atomically.

    ``metadata`` is a dict of strings, e.g. from :func:`provenance`.
    """
    fmt = _format(path)
    arrays = _host_state_dict(state_dict)
    metadata = _check_metadata(metadata)
    if fmt == ".safetensors":
        atomic_write(path, lambda f: st.write(f, arrays, metadata))
    else:
        atomic_write(path, lambda f: _write_npz(f, arrays, metadata))


def _npz_fail(path, problem: str):
    raise ValueError(f"{os.fspath(path)}: malformed .npz file: {problem}")


def _parse_npz_metadata(path, a) -> dict:
    if not (isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 1):
        _npz_fail(path, f"{METADATA_KEY} is not a 1-D uint8 array of UTF-8 JSON")
    try:
        meta = json.loads(a.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _npz_fail(path, f"{METADATA_KEY} is not UTF-8 JSON: {e}")
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        _npz_fail(path, f"{METADATA_KEY} is not a map of strings")
    return meta


def _read_npz(path, with_arrays: bool = True) -> tuple[dict, dict]:
    arrays = npz.read(path, wanted=None if with_arrays else {METADATA_KEY})
    raw = arrays.pop(METADATA_KEY, None)
    return arrays, {} if raw is None else _parse_npz_metadata(path, raw)


def _read(path, with_arrays: bool) -> tuple[dict, dict]:
    if _format(path) == ".npz":
        return _read_npz(path, with_arrays)
    with open(path, "rb") as f:
        return st.read(f, path, os.fstat(f.fileno()).st_size, with_arrays)


def load(path) -> dict:
    """The state_dict in ``path`` as ``{name: numpy array}``, in file order."""
    return _read(path, True)[0]


def load_metadata(path) -> dict:
    """The metadata in ``path`` (a dict of strings; empty if none), without the arrays."""
    return _read(path, False)[1]


def load_with_metadata(path) -> tuple[dict, dict]:
    """``(state_dict, metadata)`` from ``path``."""
    return _read(path, True)


def provenance(**fields) -> dict:
    """Metadata recording where weights came from, as strings.

    Pass e.g. ``dataset``, ``classes``, ``seed``, ``steps``; non-string values
    are stored as JSON (``[0, 1, 2]``, ``42``), so equal inputs give equal
    strings. ``minitl_version`` and ``created_utc`` are added unless given.
    """
    out = {"minitl_version": __version__,
           "created_utc": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%dT%H:%M:%SZ")}
    for k, v in fields.items():
        out[k] = v if isinstance(v, str) else json.dumps(v, default=_jsonable)
    return out


def _jsonable(v):
    # NumPy scalars and arrays (a seed, a class list) become plain Python values;
    # anything else (a Path, a dataclass) is recorded as its str().
    return v.tolist() if hasattr(v, "tolist") else str(v)
