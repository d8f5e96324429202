"""Training checkpoints: one weight file holding everything needed to resume.

A checkpoint is a single ``.safetensors`` (or ``.npz``) file written through
:func:`minitl.io.save`, so it is atomic (temporary file, then ``os.replace``)
and never pickled:

- tensors ``model/<name>``: the model's parameters and buffers (its ``state_dict``);
- tensors ``optimizer/<i>``: every array found in the optimizer's
  ``state_dict()`` (momentum buffers, Adam moments), numbered;
- metadata key ``minitl.checkpoint``: one JSON document with the step, the
  epoch, minitl's RNG state, which parameters are frozen, the optimizer's
  non-array state (group options, step counts) and the caller's ``extra``.

Nested Python values go to JSON through a small codec that keeps what JSON
would lose: tuples (Adam's ``betas``), dictionaries with non-string keys (the
optimizer's per-parameter state is keyed by position) and arrays (replaced by
a reference to a tensor of the file). Python floats survive JSON exactly
(``repr`` round-trips), which a bit-identical resume needs.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .. import io
from ..core import random as _random

META_KEY = "minitl.checkpoint"
FORMAT_VERSION = 1


# ---------------------------------------------------------------- the codec
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


def decode(data, arrays: dict):
    """Invert :func:`encode`, taking arrays from ``arrays``."""
    if isinstance(data, list):
        return [decode(v, arrays) for v in data]
    if isinstance(data, dict):
        if "__array__" in data:
            a = arrays[data["__array__"]]
            return a[()] if data.get("scalar") else a
        if "__tuple__" in data:
            return tuple(decode(v, arrays) for v in data["__tuple__"])
        if "__items__" in data:
            return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in data["__items__"]}
        return {k: decode(v, arrays) for k, v in data.items()}
    return data


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


# ---------------------------------------------------------- save and load
def save_checkpoint(path, model, optimizer, step: int, epoch: int, extra=None) -> None:
    """Write model, optimizer, RNG state, step and epoch to ``path``, atomically.

    ``path`` ends in ``.safetensors`` or ``.npz``. ``extra`` is any nested
    structure of numbers, strings, lists, tuples, dicts and arrays (``fit``
    puts the loader position, scheduler, callbacks and history there).
    ``optimizer`` may be None.
    """
    # Parameters and buffers (BatchNorm's running statistics) alike: a resumed
    # run must see the same statistics it stopped with.
    arrays = {f"model/{name}": a for name, a in model.state_dict().items()}
    doc = {
        "format": "minitl-checkpoint",
        "version": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "rng": _random.get_state(),
        "requires_grad": {name: bool(p.requires_grad) for name, p in model.named_parameters()},
        "optimizer": None if optimizer is None else encode(optimizer.state_dict(), arrays, "optimizer"),
        "extra": encode(extra, arrays, "extra"),
    }
    meta = io.provenance(kind="checkpoint", step=int(step), epoch=int(epoch))
    meta[META_KEY] = json.dumps(doc)
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    io.save(arrays, path, metadata=meta)


def load_checkpoint(path, model, optimizer=None, restore_rng: bool = True) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``model`` (and ``optimizer``).

    Parameters are loaded strictly (names and shapes must match), frozen flags
    are restored, and, with ``restore_rng``, minitl's global generator is put
    back to its saved state. Returns ``{'step', 'epoch', 'extra'}``. A file that
    is not a minitl checkpoint raises ``ValueError``.
    """
    arrays, meta = io.load_with_metadata(path)
    if META_KEY not in meta:
        raise ValueError(f"{os.fspath(path)}: not a minitl checkpoint (no {META_KEY!r} metadata); "
                         "a plain weight file loads with minitl.io.load")
    doc = json.loads(meta[META_KEY])
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)}: checkpoint format version {doc.get('version')}, "
                         f"this minitl reads version {FORMAT_VERSION}")
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    model.load_state_dict(weights, strict=True)
    params = dict(model.named_parameters())
    for name, flag in doc["requires_grad"].items():
        params[name].requires_grad = bool(flag)
        if not flag:
            params[name].grad = None
    if optimizer is not None:
        if doc["optimizer"] is None:
            raise ValueError(f"{os.fspath(path)}: the checkpoint holds no optimizer state")
        optimizer.load_state_dict(decode(doc["optimizer"], arrays))
    if restore_rng:
        _random.set_state(doc["rng"])
    return {"step": doc["step"], "epoch": doc["epoch"], "extra": decode(doc["extra"], arrays)}
