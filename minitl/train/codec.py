"""The JSON codec of checkpoints: nested Python values <-> JSON plus named arrays.

It keeps what JSON would lose: tuples (Adam's ``betas``), dictionaries with
non-string keys (the optimizer's per-parameter state is keyed by position) and
arrays (replaced by a reference to a tensor of the file). Python floats
survive JSON exactly (``repr`` round-trips), which a bit-identical resume
needs. :func:`decode` refuses anything :func:`encode` cannot have written.
"""
from __future__ import annotations

import numpy as np


def _is_array(v) -> bool:
    """NumPy/CuPy arrays and NumPy scalars (stored as tensors, not JSON)."""
    return isinstance(v, np.generic) or (hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, type))


def encode(value, arrays: dict, prefix: str):
    """``value`` as JSON-ready data; its arrays move into ``arrays`` under ``prefix/<n>``."""
    if _is_array(value):
        name = f"{prefix}/{len(arrays)}"  # unique: ``arrays`` only grows
        # CuPy arrays come to the host with .get(); NumPy scalars become 0-d arrays.
        arrays[name] = np.asarray(value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray)
                                  else value)
        return {"__array__": name, "scalar": isinstance(value, np.generic)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays, prefix) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, arrays, prefix) for k, v in value.items()}
        # Keys that JSON would turn into strings (ints) are kept as pairs.
        return {"__items__": [[encode(k, arrays, prefix), encode(v, arrays, prefix)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint "
                    "(use arrays, numbers, strings, lists, tuples and dicts)")


def decode(data, arrays: dict, group: str | None = None):
    """Invert :func:`encode`, taking arrays from ``arrays``.

    Anything :func:`encode` cannot have written (a reference to a missing
    tensor or one outside ``group``, a malformed tuple or item list, an
    unhashable key) raises ``ValueError`` saying where.
    """
    return _decode(data, arrays, group, "")


def _decode(data, arrays, group, where):
    if isinstance(data, list):
        return [_decode(v, arrays, group, f"{where}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if "__array__" in data:
        name, scalar = data["__array__"], data.get("scalar")
        if set(data) != {"__array__", "scalar"} or not isinstance(name, str) or not isinstance(scalar, bool):
            raise ValueError(f"{where or 'value'}: malformed array reference {data!r:.120}")
        if name not in arrays or (group is not None and not name.startswith(group + "/")):
            raise ValueError(f"{where or 'value'}: refers to tensor {name!r}, which the file does not hold"
                             + (f" under {group}/" if group else ""))
        a = arrays[name]
        if scalar and a.ndim != 0:
            raise ValueError(f"{where or 'value'}: tensor {name!r} should be a scalar, has shape {a.shape}")
        return a[()] if scalar else a
    if "__tuple__" in data:
        if set(data) != {"__tuple__"} or not isinstance(data["__tuple__"], list):
            raise ValueError(f"{where or 'value'}: malformed tuple {data!r:.120}")
        return tuple(_decode(v, arrays, group, f"{where}[{i}]") for i, v in enumerate(data["__tuple__"]))
    if "__items__" in data:
        items = data["__items__"]
        if set(data) != {"__items__"} or not isinstance(items, list) or \
                not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise ValueError(f"{where or 'value'}: malformed item list {data!r:.120}")
        out = {}
        for k, v in items:
            key = _hashable(_decode(k, arrays, group, where))
            try:
                hash(key)
            except TypeError:
                raise ValueError(f"{where or 'value'}: key {key!r:.60} cannot be a dict key") from None
            out[key] = _decode(v, arrays, group, f"{where}[{key!r}]")
        return out
    bad = [k for k in data if k.startswith("__")]
    if bad:
        raise ValueError(f"{where or 'value'}: unknown marker {bad[0]!r}")
    return {k: _decode(v, arrays, group, f"{where}.{k}" if where else k) for k, v in data.items()}


def _hashable(key):
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


