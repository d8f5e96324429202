"""Model specs: an architecture named by a string (``'lenet'``, ``'mlp:256,128'``),
built for a task's input shape and class count, and read back off a state_dict."""
from __future__ import annotations

import numpy as np

from .lenet import LeNet
from .mlp import MLP


def build_model(spec, num_classes: int, shape):
    """A fresh model for inputs of ``shape`` (C, H, W) and ``num_classes`` outputs.

    ``spec``: ``'lenet'``; ``'mlp'`` (hidden 256, 128) or ``'mlp:512,256'``;
    or a callable ``(num_classes, shape) -> Module``.
    """
    if callable(spec):
        return spec(num_classes, tuple(shape))
    check_model_spec(spec)
    name, sep, arg = str(spec).partition(":")
    c, h, w = shape
    if name == "lenet":
        if h != w:
            raise ValueError(f"LeNet needs square inputs, got {h}x{w}")
        return LeNet(in_channels=c, num_classes=num_classes, input_size=h)
    if name == "mlp":
        hidden = tuple(int(v) for v in arg.split(",") if v) if sep else (256, 128)
        return MLP(in_features=c * h * w, hidden=hidden, num_classes=num_classes)
    raise ValueError(f"unknown model {spec!r}; use 'lenet', 'mlp' or 'mlp:H1,H2,...'")


def check_model_spec(spec) -> None:
    """Raise ``ValueError`` unless ``spec`` is ``'lenet'``, ``'mlp'`` or ``'mlp:H1,H2,...'`` (or a callable)."""
    if callable(spec):
        return
    name, sep, arg = str(spec).partition(":")
    if name == "lenet" and not sep:
        return
    if name == "mlp":
        sizes = arg.split(",") if sep else []
        if all(v.strip().isdigit() and int(v) > 0 for v in sizes) and (sizes or not sep):
            return
        raise ValueError(f"model {spec!r}: the hidden sizes of mlp:H1,H2,... must be positive integers")
    raise ValueError(f"unknown model {spec!r}; use 'lenet', 'mlp' or 'mlp:H1,H2,...'")


def model_name(spec) -> str:
    """The spec as a string, for provenance and file names."""
    if callable(spec):
        return getattr(spec, "__name__", None) or repr(spec)
    return str(spec)


def spec_from_state(state: dict) -> tuple[str, int]:
    """``(model spec, num_classes)`` read off a state_dict's keys and shapes.

    Works for LeNet and MLP weights from minitl or from PyTorch (same keys).
    """
    if "features.0.weight" in state and "classifier.4.weight" in state:
        return "lenet", int(np.shape(state["classifier.4.weight"])[0])
    linear = sorted((int(k.split(".")[1]), np.shape(v)) for k, v in state.items()
                    if k.startswith("layers.") and k.endswith(".weight"))
    if linear:
        hidden = [shape[0] for _, shape in linear[:-1]]
        return "mlp:" + ",".join(str(h) for h in hidden), int(linear[-1][1][0])
    raise ValueError("cannot tell the architecture from these weights: expected LeNet keys "
                     "(features.0.weight, classifier.4.weight) or MLP keys (layers.N.weight)")
