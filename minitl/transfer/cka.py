"""Where the representation changed: linear CKA between two models' activations, per layer.

    table = cka(pretrained, trained, probe_loader)     # {layer: similarity in [0, 1]}
    print(format_cka(table))

Weight drift says how far a layer's weights moved; CKA (centred kernel
alignment, Kornblith et al., 2019) says whether the layer computes something
different. Linear CKA of two representations ``X`` (n x p) and ``Y`` (n x q)
of the same n inputs, columns centred, is

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

1 for the same representation up to a rotation and a scale, near 0 for
unrelated ones. It is computed through the n x n Gram matrices
(``||Y^T X||_F^2 = <X X^T, Y Y^T>_F``), so a wide convolutional map costs no
more than a narrow one.

Layers are named as :func:`minitl.transfer.layer_groups` names them (the
modules owning parameters, e.g. ``features.0`` ... ``classifier.4``), the same
names as the weight drift, so a run's drift and CKA sit in one row per layer.
A layer's activation is that module's output as the network computes it: a
convolution or linear layer followed by its activation (and pooling) runs as
one fused call, so it is the output after the ReLU (and the pool), which is the
representation the next layer reads; the head's is the logits.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..core import backend
from ..core.grad_mode import no_grad
from .groups import layer_groups


def linear_cka(x, y) -> float:
    """Linear CKA between two representations of the same inputs (rows: inputs).

    ``x`` (n, ...) and ``y`` (n, ...) are flattened to (n, p) and (n, q) and
    computed in float64. A constant representation (all rows equal, e.g. a dead
    ReLU layer) has no defined similarity: NaN, as is any NaN in the inputs.
    """
    x = np.asarray(backend.to_device(x, "cpu"), dtype=np.float64)
    y = np.asarray(backend.to_device(y, "cpu"), dtype=np.float64)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs the same inputs (rows) in both: got shapes {x.shape} and {y.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"linear_cka needs at least 2 inputs, got {x.shape[0]}")
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    x = x - x.mean(axis=0)  # centring: CKA compares the representations' covariance structure
    y = y - y.mean(axis=0)
    k, l = x @ x.T, y @ y.T
    cross = float((k * l).sum())  # ||Y^T X||_F^2
    norm = float(np.linalg.norm(k) * np.linalg.norm(l))  # ||X^T X||_F ||Y^T Y||_F
    if np.isnan(cross) or np.isnan(norm):
        return float("nan")
    if norm == 0.0:
        return float("nan")
    return cross / norm


def _module(model, name):
    m = model
    for part in filter(None, name.split(".")):
        m = m._modules[part]
    return m


def layer_activations(model, loader, layers=None) -> "OrderedDict[str, np.ndarray]":
    """``{layer: (n, ...) host array}``: each layer's output over every input of ``loader``.

    ``loader`` yields ``(x, y)`` or ``x`` (Tensors). Runs in eval mode without
    recording the graph; the model's train/eval mode is put back afterwards.
    ``layers`` defaults to :func:`layer_groups` (the head last).
    """
    names = list(layer_groups(model) if layers is None else layers)
    known = set(layer_groups(model)) | {n for n, _ in _named_modules(model)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{type(model).__name__} has no layer {', '.join(map(repr, unknown))}; "
                         f"its layers are {', '.join(layer_groups(model))}")
    outputs = OrderedDict((n, []) for n in names)
    hooked = []
    for name in names:
        module = _module(model, name)
        original = module.forward

        def record(*args, _f=original, _name=name, **kwargs):
            out = _f(*args, **kwargs)
            outputs[_name].append(backend.to_device(out.data, "cpu").copy())
            return out
        object.__setattr__(module, "forward", record)  # an instance attribute shadows the class's forward
        hooked.append(module)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for module in hooked:
            module.__dict__.pop("forward", None)
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    missing = [n for n, outs in outputs.items() if not outs]
    if missing:
        raise ValueError(f"layers {', '.join(missing)} produced no output (empty loader, or not on the forward path)")
    return OrderedDict((n, np.concatenate(outs)) for n, outs in outputs.items())


def _named_modules(model, prefix=""):
    for name, child in model._modules.items():
        full = f"{prefix}.{name}" if prefix else name
        yield full, child
        yield from _named_modules(child, full)


def cka(model_a, model_b, loader, layers=None) -> "OrderedDict[str, float]":
    """Per-layer linear CKA between ``model_a`` and ``model_b`` on the inputs of ``loader``.

    ``layers``: names to compare (default: the layer groups both models have,
    in ``model_b``'s order). Returns ``{layer: CKA}``. The loader must give the
    same inputs in the same order on both passes (no shuffling, no random
    transform); the two activation sets are checked to hold as many inputs.
    """
    if layers is None:
        theirs = set(layer_groups(model_a))
        layers = [n for n in layer_groups(model_b) if n in theirs]
        if not layers:
            raise ValueError(f"{type(model_a).__name__} and {type(model_b).__name__} share no layer names")
    acts_a = layer_activations(model_a, loader, layers)
    acts_b = layer_activations(model_b, loader, layers)
    out = OrderedDict()
    for name in layers:
        a, b = acts_a[name], acts_b[name]
        if len(a) != len(b):
            raise ValueError(f"layer {name}: {len(a)} inputs through the first model, {len(b)} through the second; "
                             f"the loader must give the same inputs twice")
        out[name] = linear_cka(a, b)
    return out


def format_cka(table, title: str = "CKA") -> str:
    """A per-layer CKA table as Markdown (``layer | CKA``)."""
    rows = [f"| layer | {title} |", "|---|--:|"]
    rows += [f"| {name} | {'n/a' if np.isnan(v) else f'{v:.3f}'} |" for name, v in table.items()]
    return "\n".join(rows)
