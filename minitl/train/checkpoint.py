"""Training checkpoints: one weight file holding everything needed to resume.

A checkpoint is a single ``.safetensors`` (or ``.npz``) file written through
:func:`minitl.io.save`, so it is atomic (temporary file, then ``os.replace``)
and never pickled:

- tensors ``model/<name>``: the model's parameters and buffers (its ``state_dict``);
- tensors ``optimizer/<i>``: every array found in the optimizer's
  ``state_dict()`` (momentum buffers, Adam moments), numbered;
- metadata key ``minitl.checkpoint``: one JSON document with the step, the
  epoch, minitl's RNG state, which parameters are frozen, the optimizer's
  non-array state (group options, step counts), the caller's ``extra`` and
  the SHA-256 of every tensor's bytes (safetensors has no checksum of its own).

Loading trusts nothing: :func:`read_checkpoint` checks the whole file (the
document against :data:`DOC_SCHEMA`, the tensor names against
:data:`TENSOR_GROUPS`, the digest, JSON depth, the model's names and shapes,
the optimizer's and the RNG's state) before anything is changed, and raises
one ``ValueError`` naming the file and the first problem. Only then does
:func:`apply_checkpoint` write into the model, the optimizer and the RNG.

Nested Python values go to JSON through :mod:`minitl.train.codec`, which
keeps what JSON would lose (tuples, non-string keys, arrays as references to
tensors of the file).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from .. import io
from ..core import backend
from ..core import random as _random
from .codec import decode, encode

META_KEY = "minitl.checkpoint"
FORMAT_VERSION = 2  # 2: the tensors' SHA-256 is recorded and verified
MAX_JSON_DEPTH = 64  # a real document nests about 8 deep
# Tensor names are "<group>/<name>"; a new kind of state (e.g. "buffer" for
# BatchNorm statistics) is one more entry here and one more check in
# read_checkpoint.
TENSOR_GROUPS = ("model", "optimizer", "extra")


# ------------------------------------------------------------- the digest
def tensors_digest(arrays: dict) -> str:
    """SHA-256 over every tensor's name, dtype, shape and little-endian bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------- save and load
def save_checkpoint(path, model, optimizer, step: int, epoch: int, extra=None) -> None:
    """Write model, optimizer, RNG state, step and epoch to ``path``, atomically.

    ``path`` ends in ``.safetensors`` or ``.npz``. ``extra`` is any nested
    structure of numbers, strings, lists, tuples, dicts and arrays (``fit``
    puts the loader position, scheduler, callbacks and history there).
    ``optimizer`` may be None.
    """
    # Parameters and buffers (BatchNorm's running statistics) alike: a resumed
    # run must see the same statistics it stopped with. Host copies: the digest
    # is taken over the bytes that are written.
    arrays = {f"model/{name}": backend.to_device(a, "cpu") for name, a in model.state_dict().items()}
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
    doc["tensors_sha256"] = tensors_digest(arrays)
    meta = io.provenance(kind="checkpoint", step=int(step), epoch=int(epoch))
    meta[META_KEY] = json.dumps(doc)
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    io.save(arrays, path, metadata=meta)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_flags(v) -> bool:
    return isinstance(v, dict) and all(isinstance(f, bool) for f in v.values())


def _is_digest(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


# The document's fields and what each must be; "optimizer" and "extra" are
# checked when decoded, "rng" by the generator itself.
DOC_SCHEMA = {
    "format": (lambda v: v == "minitl-checkpoint", "'minitl-checkpoint'"),
    "version": (lambda v: v == FORMAT_VERSION, f"{FORMAT_VERSION} (this minitl's format; re-create "
                                               "older checkpoints)"),
    "step": (_is_count, "a non-negative integer"),
    "epoch": (_is_count, "a non-negative integer"),
    "rng": (lambda v: isinstance(v, dict), "a bit generator state"),
    "requires_grad": (_is_flags, "a map of parameter names to true/false"),
    "optimizer": (lambda v: v is None or isinstance(v, dict), "null or an optimizer state"),
    "extra": (lambda v: True, "anything"),
    "tensors_sha256": (_is_digest, "64 hex digits"),
}


@dataclass
class Checkpoint:
    """A checkpoint read and checked against a model (and optimizer), not yet applied."""

    path: str
    step: int
    epoch: int
    weights: dict
    requires_grad: dict
    optimizer: dict | None
    rng: dict
    extra: object


def _depth(value) -> int:
    """How deeply ``value`` nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            break
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        stack.extend((c, d + 1) for c in children)
    return deepest


def _parse_doc(meta: dict) -> dict:
    if META_KEY not in meta:
        raise ValueError(f"not a minitl checkpoint (no {META_KEY!r} metadata); "
                         "a plain weight file loads with minitl.io.load")
    try:
        doc = json.loads(meta[META_KEY])
    except RecursionError:
        raise ValueError(f"{META_KEY} metadata nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        raise ValueError(f"{META_KEY} metadata is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{META_KEY} metadata is not a JSON object")
    if _depth(doc) > MAX_JSON_DEPTH:
        raise ValueError(f"{META_KEY} metadata nests deeper than {MAX_JSON_DEPTH} levels")
    if doc.get("version") != FORMAT_VERSION and isinstance(doc.get("version"), int):
        raise ValueError(f"checkpoint format version {doc['version']}, this minitl reads version "
                         f"{FORMAT_VERSION}")
    missing, unknown = set(DOC_SCHEMA) - set(doc), set(doc) - set(DOC_SCHEMA)
    if missing or unknown:
        raise ValueError(f"{META_KEY} metadata " + (f"lacks {sorted(missing)}" if missing else
                                                    f"has unknown field(s) {sorted(unknown)}"))
    for key, (ok, wanted) in DOC_SCHEMA.items():
        if not ok(doc[key]):
            raise ValueError(f"{META_KEY} field {key!r} is {doc[key]!r:.80}; expected {wanted}")
    return doc


def _check_tensors(arrays: dict, doc: dict) -> None:
    for name in arrays:
        group = name.split("/", 1)[0]
        if "/" not in name or group not in TENSOR_GROUPS:
            raise ValueError(f"tensor {name!r} belongs to no known group ({', '.join(g + '/' for g in TENSOR_GROUPS)})")
    digest = tensors_digest(arrays)
    if digest != doc["tensors_sha256"]:
        raise ValueError(f"the tensors' SHA-256 is {digest}, the checkpoint recorded "
                         f"{doc['tensors_sha256']}: the tensor bytes are damaged")


def _check_model(arrays: dict, doc: dict, model) -> dict:
    """The model's weights from ``arrays``, after checking names, shapes and dtypes against ``model``."""
    params = dict(model.named_parameters())
    state = model.state_dict()  # parameters and buffers
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    missing, unexpected = [k for k in state if k not in weights], [k for k in weights if k not in state]
    if missing or unexpected:
        raise ValueError(f"the model's parameters and buffers do not match: " + (
            f"missing model/{missing[0]}" if missing else f"unexpected model/{unexpected[0]}")
            + f" ({len(missing)} missing, {len(unexpected)} unexpected)")
    for name, have in state.items():
        w, what = weights[name], "parameter" if name in params else "buffer"
        if tuple(w.shape) != tuple(have.shape):
            raise ValueError(f"tensor model/{name} has shape {tuple(w.shape)}, the model's {what} "
                             f"{tuple(have.shape)}")
        if (w.dtype.kind == "f") != (have.dtype.kind == "f"):
            raise ValueError(f"tensor model/{name} has dtype {w.dtype}, the model's {what} {have.dtype}")
    if set(doc["requires_grad"]) != set(params):
        odd = sorted(set(doc["requires_grad"]) ^ set(params))[0]
        raise ValueError(f"requires_grad does not list the model's parameters (differs at {odd!r})")
    return weights


def read_checkpoint(path, model, optimizer=None) -> Checkpoint:
    """Read ``path`` and check all of it against ``model`` and ``optimizer``; change nothing.

    Raises one ``ValueError`` naming the file and the first problem.
    """
    path = os.fspath(path)
    arrays, meta = io.load_with_metadata(path)  # malformed files raise ValueError naming the file
    try:
        doc = _parse_doc(meta)
        _check_tensors(arrays, doc)
        weights = _check_model(arrays, doc, model)
        opt_state = None
        if optimizer is not None:
            if doc["optimizer"] is None:
                raise ValueError("the checkpoint holds no optimizer state")
            opt_state = decode(doc["optimizer"], arrays, "optimizer")
            optimizer.check_state_dict(opt_state)
        _random.check_state(doc["rng"])
        extra = decode(doc["extra"], arrays, "extra")
    except ValueError as e:
        raise ValueError(f"{path}: not a usable checkpoint: {e}") from None
    return Checkpoint(path, doc["step"], doc["epoch"], weights, doc["requires_grad"], opt_state, doc["rng"], extra)


def apply_checkpoint(ckpt: Checkpoint, model, optimizer=None, restore_rng: bool = True) -> dict:
    """Write a checked :class:`Checkpoint` into ``model``, ``optimizer`` and (with ``restore_rng``) the RNG."""
    model.load_state_dict(ckpt.weights, strict=True)
    params = dict(model.named_parameters())
    for name, flag in ckpt.requires_grad.items():
        params[name].requires_grad = flag
        if not flag:
            params[name].grad = None
    if optimizer is not None:
        optimizer.load_state_dict(ckpt.optimizer)
    if restore_rng:
        _random.set_state(ckpt.rng)
    return {"step": ckpt.step, "epoch": ckpt.epoch, "extra": ckpt.extra}


def load_checkpoint(path, model, optimizer=None, restore_rng: bool = True) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``model`` (and ``optimizer``).

    The whole file is checked first (:func:`read_checkpoint`): a bad one raises
    ``ValueError`` naming the file and the first problem, and changes nothing.
    Parameters are loaded strictly, frozen flags are restored, and, with
    ``restore_rng``, minitl's global generator is put back to its saved state.
    Returns ``{'step', 'epoch', 'extra'}``.
    """
    return apply_checkpoint(read_checkpoint(path, model, optimizer), model, optimizer, restore_rng)
