"""How far weights moved, and the freeze audit that fails loudly when a "frozen" weight moved.

    before = snapshot(model)                 # copies: parameters are updated in place
    ... train ...
    weight_drift(model, before)              # {name: |W - W0| / |W0|}
    layer_drift(model, pretrained_state)     # {layer: drift of its weight and bias together}, for plots
    audit(model, before, setup)              # raises RuntimeError if a frozen parameter moved at all
                                             # (or a frozen BatchNorm's running statistics)
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..core import backend
from .batchnorm import frozen_buffers
from .groups import freeze_plan
from .strategies import parse_strategy


def snapshot(model) -> "OrderedDict[str, np.ndarray]":
    """Host copies of every parameter and persistent buffer (the state_dict): a
    reference that training cannot change.

    (``model.state_dict()`` returns the live arrays, which optimizers and
    BatchNorm update in place.)
    """
    return OrderedDict((n, backend.to_device(a, "cpu").copy()) for n, a in model.state_dict().items())


def _host(v) -> np.ndarray:
    v = v.data if hasattr(v, "requires_grad") else v
    return np.asarray(backend.to_device(v, "cpu"))


def _pairs(model, reference_state):
    """(name, now, then) as float64 host arrays for parameters in both with equal shapes."""
    for name, p in model.named_parameters():
        if name in reference_state:
            then = _host(reference_state[name])
            if then.shape == p.shape:
                yield name, _host(p).astype(np.float64), then.astype(np.float64)


def _relative(diff_sq: float, ref_sq: float) -> float:
    """sqrt(diff_sq / ref_sq); a zero reference gives 0 if nothing moved, else inf."""
    if ref_sq == 0:
        return 0.0 if diff_sq == 0 else math.inf
    return math.sqrt(diff_sq / ref_sq)


def weight_drift(model, reference_state) -> "OrderedDict[str, float]":
    """``{name: ||W - W0|| / ||W0||}`` (Frobenius norms) for every parameter of
    ``model`` that ``reference_state`` holds with the same shape (a replaced
    head of another size is skipped)."""
    out = OrderedDict()
    for name, now, then in _pairs(model, reference_state):
        out[name] = _relative(float(((now - then) ** 2).sum()), float((then ** 2).sum()))
    return out


def layer_drift(model, reference_state) -> "OrderedDict[str, float]":
    """Drift per layer (module prefix): ``||dW, db|| / ||W0, b0||`` over all of a
    layer's parameters together, in layer order; what the drift plots show."""
    sums: "OrderedDict[str, list]" = OrderedDict()
    for name, now, then in _pairs(model, reference_state):
        layer = name.rsplit(".", 1)[0] if "." in name else name
        acc = sums.setdefault(layer, [0.0, 0.0])
        acc[0] += float(((now - then) ** 2).sum())
        acc[1] += float((then ** 2).sum())
    return OrderedDict((layer, _relative(d, r)) for layer, (d, r) in sums.items())


@dataclass
class AuditReport:
    """The outcome of :func:`audit`.

    ``frozen``: parameters the strategy kept frozen (all verified bit-identical);
    ``trainable``: the others; ``unchanged``: trainable parameters that did
    not move at all (suspicious, e.g. a dead layer or a forgotten optimizer
    group, but not an error); ``drift``/``layers``: relative drift per
    parameter and per layer.
    """

    strategy: str
    frozen: list = field(default_factory=list)
    trainable: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    drift: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    frozen_buffers: list = field(default_factory=list)
    moving_buffers: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for results.json."""
        return {"strategy": self.strategy, "frozen": list(self.frozen), "trainable": list(self.trainable),
                "unchanged": list(self.unchanged), "drift": dict(self.drift), "layers": dict(self.layers),
                "frozen_buffers": list(self.frozen_buffers), "moving_buffers": list(self.moving_buffers)}

    def __str__(self) -> str:
        lines = [f"freeze audit for {self.strategy}: {len(self.frozen)} frozen parameter(s) unchanged, "
                 f"{len(self.trainable)} trainable"]
        frozen_layers = {n.rsplit(".", 1)[0] for n in self.frozen}
        for layer, d in self.layers.items():
            lines.append(f"  {layer:<16} drift {d:.3e}{'  (frozen)' if layer in frozen_layers else ''}")
        if self.unchanged:
            lines.append(f"  trainable but unchanged: {', '.join(self.unchanged)}")
        if self.frozen_buffers or self.moving_buffers:
            lines.append(f"  buffers: {len(self.frozen_buffers)} frozen (BatchNorm statistics, unchanged), "
                         f"{len(self.moving_buffers)} free to move")
        return "\n".join(lines)


def _claims(model, setup_or_strategy):
    """(strategy, claimed frozen names, frozen at the start) from a Setup or a Strategy/spec."""
    if hasattr(setup_or_strategy, "frozen_at_start"):
        setup = setup_or_strategy
        return setup.strategy, list(setup.frozen), list(setup.frozen_at_start)
    strategy = parse_strategy(setup_or_strategy)
    plan = freeze_plan(model, strategy)
    if strategy.kind == "gradual":
        # Unfreezing is monotone: what is frozen now must have been frozen throughout.
        return strategy, [n for n, p in model.named_parameters() if not p.requires_grad], plan
    return strategy, plan, plan


def audit(model, before_state, setup_or_strategy) -> AuditReport:
    """Check that training froze and trained exactly what the strategy claims.

    ``before_state``: a :func:`snapshot` taken before training (a ``Setup``'s
    ``initial_state``). ``setup_or_strategy``: the ``Setup`` from
    ``prepare`` (its live ``frozen`` list is the claim) or a strategy/spec
    (the claim is derived from the model's layer groups). Raises
    ``RuntimeError`` when a claimed-frozen parameter changed by even one bit
    or is no longer frozen, when a buffer of a frozen BatchNorm (every
    BatchNorm with ``bn=frozen``) changed by one bit, when a freezing strategy froze nothing, or when a
    strategy that trains every layer left one frozen. Returns an :class:`AuditReport`.
    """
    strategy, claimed, at_start = _claims(model, setup_or_strategy)
    params = OrderedDict(model.named_parameters())
    if strategy.freezes and not at_start:
        raise RuntimeError(f"freeze audit: strategy {strategy.name!r} claims to freeze layers but froze nothing")
    problems = []
    missing = [n for n in params if n not in before_state]
    if missing:
        raise ValueError(f"audit: the reference state lacks {', '.join(missing)}; take it with snapshot(model)")
    unfrozen = [n for n in claimed if params[n].requires_grad]
    if unfrozen:
        problems.append(f"claimed frozen but requires_grad is True: {', '.join(unfrozen)}")
    moved, unchanged = [], []
    for name, p in params.items():
        same = _bitwise_equal(_host(p), _host(before_state[name]))
        if name in claimed and not same:
            moved.append(name)
        elif name not in claimed and same:
            unchanged.append(name)
    if moved:
        problems.append(f"frozen parameter(s) moved: {', '.join(moved)}")
    stray = [n for n, p in params.items() if not p.requires_grad and n not in claimed]
    if stray:
        problems.append(f"strategy trains these but they are frozen: {', '.join(stray)}")
    buffers = OrderedDict(model.named_buffers(persistent_only=True))
    absent = [n for n in buffers if n not in before_state]
    if absent:
        raise ValueError(f"audit: the reference state lacks buffer(s) {', '.join(absent)}; take it with "
                         "snapshot(model)")
    still = frozen_buffers(model, claimed, all_bn=strategy.bn_frozen)
    drifted = [n for n in still if not _bitwise_equal(_host(buffers[n]), _host(before_state[n]))]
    if drifted:
        problems.append(f"frozen BatchNorm statistics moved: {', '.join(drifted)}")
    if problems:
        raise RuntimeError(f"freeze audit failed for strategy {strategy.name!r}: " + "; ".join(problems))
    return AuditReport(strategy=strategy.name, frozen=list(claimed),
                       trainable=[n for n in params if n not in claimed], unchanged=unchanged,
                       drift=dict(weight_drift(model, before_state)), layers=dict(layer_drift(model, before_state)),
                       frozen_buffers=still, moving_buffers=[n for n in buffers if n not in still])


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (so -0.0 vs 0.0 or two NaN payloads count as moved)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
