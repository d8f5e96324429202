"""Model specs: an architecture named by a string (``'lenet'``, ``'mlp:256,128'``),
built for a task's input shape and class count, and read back off a state_dict."""
from __future__ import annotations

import numpy as np

from .lenet import LeNet
from .mlp import MLP
from .resnet import resnet18, resnet34, resnet50

RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
# Blocks per stage -> depth, and whether the blocks are bottlenecks.
_RESNET_DEPTH = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
                 ((3, 4, 6, 3), True): "resnet50"}


def _resnet_options(spec, arg):
    """``width=16,small_input=1`` -> {'width': 16, 'small_input': True}; small_input
    defaults to True (the CIFAR stem: the specs serve 28x28 / 32x32 tasks)."""
    opts = {"width": 64, "small_input": True}
    for item in filter(None, arg.split(",")):
        key, eq, value = item.partition("=")
        if key not in opts or not eq:
            raise ValueError(f"{spec!r}: unknown option {item!r}; ResNet specs take width=N and small_input=0|1")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{spec!r}: {key} must be an integer, got {value!r}") from None
        if key == "width" and number < 1:
            raise ValueError(f"{spec!r}: width must be >= 1, got {number}")
        if key == "small_input" and number not in (0, 1):
            raise ValueError(f"{spec!r}: small_input must be 0 or 1, got {number}")
        opts[key] = number if key == "width" else bool(number)
    return opts


def build_model(spec, num_classes: int, shape):
    """A fresh model for inputs of ``shape`` (C, H, W) and ``num_classes`` outputs.

    ``spec``: ``'lenet'``; ``'mlp'`` (hidden 256, 128) or ``'mlp:512,256'``;
    ``'resnet18'`` / ``'resnet34'`` / ``'resnet50'`` with options
    ``:width=16,small_input=0`` (width 64 and the small-input stem by default);
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
    if name in RESNETS:
        return RESNETS[name](num_classes=num_classes, in_chans=c, **_resnet_options(spec, arg))
    raise ValueError(f"unknown model {spec!r}; use 'lenet', 'mlp', 'mlp:H1,H2,...' or "
                     "'resnet18|34|50[:width=N,small_input=0|1]'")


def check_model_spec(spec) -> None:
    """Raise ``ValueError`` unless ``spec`` is ``'lenet'``, ``'mlp'``, ``'mlp:H1,H2,...'``,
    ``'resnet18|34|50[:width=N,small_input=0|1]'`` (or a callable)."""
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
    if name in RESNETS:
        _resnet_options(spec, arg)  # raises on a bad option
        return
    raise ValueError(f"unknown model {spec!r}; use 'lenet', 'mlp', 'mlp:H1,H2,...' or "
                     "'resnet18|34|50[:width=N,small_input=0|1]'")


def model_name(spec) -> str:
    """The spec as a string, for provenance and file names."""
    if callable(spec):
        return getattr(spec, "__name__", None) or repr(spec)
    return str(spec)


def spec_from_state(state: dict) -> tuple[str, int]:
    """``(model spec, num_classes)`` read off a state_dict's keys and shapes.

    Works for LeNet and MLP weights from minitl or from PyTorch (same keys).
    """
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state and "fc.weight" in state:
        return _resnet_spec(state)
    if "features.0.weight" in state and "classifier.4.weight" in state:
        return "lenet", int(np.shape(state["classifier.4.weight"])[0])
    linear = sorted((int(k.split(".")[1]), np.shape(v)) for k, v in state.items()
                    if k.startswith("layers.") and k.endswith(".weight"))
    if linear:
        hidden = [shape[0] for _, shape in linear[:-1]]
        return "mlp:" + ",".join(str(h) for h in hidden), int(linear[-1][1][0])
    raise ValueError("cannot tell the architecture from these weights: expected LeNet keys "
                     "(features.0.weight, classifier.4.weight), MLP keys (layers.N.weight) or ResNet keys "
                     "(conv1.weight, layer1.0.conv1.weight, fc.weight)")


def _resnet_spec(state) -> tuple[str, int]:
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in range(1, 5))
    name = _RESNET_DEPTH.get((blocks, "layer1.0.conv3.weight" in state))
    if name is None:
        raise ValueError(f"ResNet weights with {blocks} blocks per stage are not resnet18, 34 or 50")
    stem = np.shape(state["conv1.weight"])
    spec = f"{name}:width={stem[0]}" + ("" if stem[2] == 3 else ",small_input=0")
    return spec, int(np.shape(state["fc.weight"])[0])
