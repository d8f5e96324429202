"""Transfer learning strategies: freeze / unfreeze, head replacement, L2-SP, cached features.

    setup = prepare("finetune:lr_mult=0.1", LeNet(), load("source.safetensors"), num_classes=5, lr=0.01)
    history = setup.fit(train_loader, steps=300, eval_loader=test_loader)
    report = setup.audit()          # raises if a frozen weight moved or a freezing strategy froze nothing

A model's *layer groups* are the modules that own parameters, in order; for
LeNet ``[features.0, features.3, classifier.0, classifier.2, classifier.4]``,
the last being the head. Every strategy gets one optimizer parameter group
per layer group, holding every parameter (frozen ones too), so a parameter
unfrozen mid-training is updated from the next step on.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import backend, function, optim
from .checkpoint import random_generators
from .drift import AuditReport, audit, layer_drift, snapshot, weight_drift
from .nn.layers import Dropout
from .strategies import NEEDS_PRETRAINED, STRATEGIES, Strategy, parse_strategy
from .tensor import Tensor

__all__ = [
    "STRATEGIES", "Strategy", "parse_strategy", "prepare", "Setup", "layer_groups", "head_names",
    "freeze_to", "freeze_plan", "GradualUnfreeze", "L2SP", "cache_features", "feature_loader", "augments",
    "weight_drift", "layer_drift", "audit", "AuditReport", "snapshot",
]


# ------------------------------------------------------------- layer groups
def _group_of(name: str) -> str:
    """The module prefix owning parameter ``name`` (``'classifier.4.weight'`` -> ``'classifier.4'``)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def layer_groups(model) -> list[str]:
    """Names of the modules that own parameters, in parameter order (the head last)."""
    groups = []
    for name, _ in model.named_parameters():
        g = _group_of(name)
        if g not in groups:
            groups.append(g)
    return groups


def head_names(model) -> list[str]:
    """Parameter names of ``model.head`` (the layer ``reset_classifier`` replaces)."""
    ids = {id(p) for p in model.head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def _group_params(model) -> "OrderedDict[str, list]":
    out = OrderedDict((g, []) for g in layer_groups(model))
    for name, p in model.named_parameters():
        out[_group_of(name)].append((name, p))
    return out


def freeze_to(model, n: int) -> list[str]:
    """Freeze the first ``n`` layer groups and unfreeze the rest, as fastai's ``freeze_to``.

    ``n`` counts like a slice bound: ``freeze_to(m, -1)`` trains only the head,
    ``freeze_to(m, 0)`` trains everything. Returns the frozen parameter names.
    """
    groups = layer_groups(model)
    k = max(len(groups) + n, 0) if n < 0 else min(n, len(groups))
    frozen_groups = set(groups[:k])
    frozen = []
    for name, p in model.named_parameters():
        if _group_of(name) in frozen_groups:
            p.requires_grad = False
            p.grad = None
            frozen.append(name)
        else:
            p.requires_grad = True
    return frozen


def _frozen_count(strategy: Strategy, n_groups: int) -> int:
    """How many leading layer groups ``strategy`` freezes when training starts."""
    if strategy.kind in ("features", "gradual"):
        return n_groups - 1
    if strategy.kind == "layers" and strategy.options["mode"] == "frozen":
        return strategy.options["n"]
    return 0


def freeze_plan(model, strategy) -> list[str]:
    """The parameter names ``strategy`` freezes at the start of training, for ``model``."""
    strategy = parse_strategy(strategy)
    groups = layer_groups(model)
    chosen = set(groups[:_frozen_count(strategy, len(groups))])
    return [n for n, _ in model.named_parameters() if _group_of(n) in chosen]


# -------------------------------------------------------------- callbacks
class GradualUnfreeze:
    """Callback for gradual unfreezing: start with all but the head frozen
    (``freeze_to(-1)``) and unfreeze one more group, from the top down, every
    ``every`` steps, until everything trains.

    ``optimizer``, when given, must already hold every parameter: otherwise a
    group would be "unfrozen but never updated", and the constructor says so.
    ``frozen``: a list kept equal to the names still frozen (``Setup.frozen``).
    The state follows from the step alone, so a resumed run re-applies it.
    """

    def __init__(self, model, every: int, optimizer=None, frozen: list | None = None):
        if every < 1:
            raise ValueError(f"GradualUnfreeze needs every >= 1, got {every}")
        self.model, self.every = model, int(every)
        self.n_groups = len(layer_groups(model))
        self.frozen = frozen if frozen is not None else []
        self.unfrozen_at: dict[str, int] = {}
        self._current = None
        if optimizer is not None:
            held = {id(p) for g in optimizer.param_groups for p in g["params"]}
            absent = [n for n, p in model.named_parameters() if id(p) not in held]
            if absent:
                raise ValueError(f"the optimizer lacks {', '.join(absent)}: unfrozen later, they would never "
                                 "be updated; build it over model.parameters() (frozen ones included)")

    def frozen_groups_at(self, step: int) -> int:
        """How many leading layer groups are frozen after ``step`` steps."""
        return max(self.n_groups - 1 - step // self.every, 0)

    def _apply(self, state) -> None:
        n = self.frozen_groups_at(state.step)
        if n == self._current:
            return
        if self._current is not None and n < self._current:
            for g in layer_groups(self.model)[n:self._current]:
                self.unfrozen_at.setdefault(g, state.step)
        self.frozen[:] = freeze_to(self.model, n)
        self._current = n

    def state_dict(self) -> dict:
        """When each group was unfrozen (the freezing itself follows from the step)."""
        return {"unfrozen_at": dict(self.unfrozen_at)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (``fit`` does this when resuming)."""
        self.unfrozen_at = dict(state["unfrozen_at"])

    on_train_begin = _apply
    on_step_end = _apply


class L2SP:
    """The L2-SP penalty of Li, Grandvalet and Davoine (2018):
    ``alpha/2 * sum |w - w0|^2`` over the transferred parameters (``w0`` their
    pretrained values) plus ``beta/2 * sum |w|^2`` over the new ones (the head).

    Called as ``penalty(model)`` by ``fit``; it is bound to the parameters it
    was built for, so the argument is ignored (the cached-features path passes
    only the head).
    """

    def __init__(self, model, alpha: float, beta: float, anchored, free):
        params = dict(model.named_parameters())
        self.alpha, self.beta = float(alpha), float(beta)
        self.anchors = [(params[n], Tensor._make(params[n].data.copy())) for n in anchored]
        self.free = [params[n] for n in free]

    def __call__(self, model=None) -> Tensor:
        total = None
        for coef, terms in ((self.alpha, [p - w0 for p, w0 in self.anchors]), (self.beta, list(self.free))):
            if coef == 0 or not terms:
                continue
            sq = None
            for d in terms:
                s = (d * d).sum()
                sq = s if sq is None else sq + s
            part = sq * (coef / 2)
            total = part if total is None else total + part
        if total is None:
            ref = (self.anchors[0][0] if self.anchors else self.free[0]).data
            total = Tensor._make(backend.get_array_module(ref).zeros((), dtype=ref.dtype))
        return total


# ---------------------------------------------------------------- prepare
@dataclass
class Setup:
    """A model made ready for a strategy, with what training it needs.

    ``frozen``: parameter names frozen so far (``GradualUnfreeze`` shrinks it);
    ``frozen_at_start``: those frozen by :func:`prepare`; ``groups``: the layer
    groups, one optimizer parameter group each, in order; ``lrs``: their
    learning rates; ``transferred``: names copied from the pretrained weights;
    ``initial_state``: copies of every parameter after :func:`prepare` (the
    audit's reference).
    """

    strategy: Strategy
    model: object
    optimizer: object
    callbacks: list = field(default_factory=list)
    penalty: object = None
    cache_features: bool = False
    frozen: list = field(default_factory=list)
    frozen_at_start: tuple = ()
    groups: list = field(default_factory=list)
    lrs: list = field(default_factory=list)
    transferred: list = field(default_factory=list)
    initial_state: dict = field(default_factory=dict)

    def fit(self, loader, *, steps=None, epochs=None, eval_loader=None, cache=None, callbacks=(), **kwargs):
        """Train with :func:`minitl.train.fit`, adding this setup's callbacks and penalty.

        ``cache``: None uses the feature cache when ``cache_features`` is True and
        the loader's transform is not random (augmentation would change the features);
        True insists (raising if impossible); False never caches. The cached
        path trains ``model.head`` on :func:`feature_loader` batches and leaves
        ``loader``'s epoch counter where the uncached path would; callbacks then
        see the head as ``state.model`` and a checkpoint holds the head only.
        Other keyword arguments go to ``fit`` as they are.
        """
        from .train import fit

        augmented = augments(getattr(loader, "transform", None))
        use_cache = self.cache_features and not augmented if cache is None else bool(cache)
        if use_cache and (augmented or not self.cache_features):
            raise ValueError(f"cannot cache features for strategy {self.strategy.name!r}"
                             + (" with a random transform (augmentation) on the loader" if augmented else
                                ": its backbone is not frozen and deterministic"))
        kwargs.update(steps=steps, epochs=epochs, callbacks=list(self.callbacks) + list(callbacks),
                      penalty=self.penalty)
        if not use_cache:
            return fit(self.model, loader, self.optimizer, eval_loader=eval_loader, **kwargs)
        train_feats = feature_loader(self.model, loader)
        eval_feats = feature_loader(self.model, eval_loader) if eval_loader is not None else None
        history = fit(self.model.head, train_feats, self.optimizer, eval_loader=eval_feats, **kwargs)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(train_feats.epoch)
        return history

    def audit(self) -> AuditReport:
        """:func:`audit` against ``initial_state``: raises if a frozen parameter moved."""
        return audit(self.model, self.initial_state, self)


def _load_pretrained(model, pretrained_state, names, strict_extra: bool, kind: str, copy: bool = True) -> None:
    """Check ``pretrained_state`` has ``names`` with the model's shapes; copy them in when ``copy``."""
    if pretrained_state is None:
        raise ValueError(f"strategy {kind!r} needs pretrained weights (pretrained_state=None)")
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in pretrained_state]
    if missing:
        raise ValueError(f"strategy {kind!r}: the pretrained weights lack {', '.join(missing)}; "
                         f"they hold {', '.join(pretrained_state)}")
    for n in names:
        shape = tuple(pretrained_state[n].shape)
        if shape != params[n].shape:
            raise ValueError(f"strategy {kind!r}: {n} has shape {params[n].shape} in the model but {shape} "
                             "in the pretrained weights: a different architecture?")
    heads = set(head_names(model))
    extra = [k for k in pretrained_state if k not in params and k not in heads]
    if strict_extra and extra:
        raise ValueError(f"strategy {kind!r}: the pretrained weights hold {', '.join(extra)}, which this model "
                         "does not have: a different architecture?")
    if copy:
        state = OrderedDict(model.state_dict())
        for n in names:
            state[n] = pretrained_state[n]
        model.load_state_dict(state, strict=True)


def _make_optimizer(kind, param_groups, lr, momentum, weight_decay):
    if callable(kind):
        return kind(param_groups, lr)
    if kind == "sgd":
        return optim.SGD(param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adam":
        return optim.Adam(param_groups, lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw' or a callable(param_groups, lr), got {kind!r}")


def prepare(strategy, model, pretrained_state, num_classes: int, lr: float, optimizer="sgd",
            momentum: float = 0.9, weight_decay: float = 0.0) -> Setup:
    """Make ``model`` (freshly constructed, seeded by the caller) ready for ``strategy``.

    The head is always replaced by a fresh one for ``num_classes`` first (so,
    for one seed, every strategy starts from the same head), then per strategy:

    - ``scratch``: nothing more (``pretrained_state`` may be None);
    - ``structure``: the pretrained weights' names and shapes are checked
      against the model, none is copied;
    - ``features``: the backbone is copied and frozen;
    - ``finetune``, ``l2sp``: the backbone is copied; ``l2sp`` adds the penalty;
    - ``gradual``: the backbone is copied and a :class:`GradualUnfreeze` callback added;
    - ``layers:n:frozen|finetune``: the first ``n`` layer groups are copied (and
      frozen), the rest keep their fresh initialisation.

    ``lr_mult`` scales the learning rate of the copied layer groups.
    ``weight_decay`` applies to every group; leave it 0 with ``l2sp``, whose
    ``beta`` term is the decay of the new head and whose ``alpha`` term pulls
    the backbone toward the pretrained weights instead of toward zero.
    ``optimizer``: ``'sgd'`` (with ``momentum``), ``'adam'``, ``'adamw'`` or a
    callable ``(param_groups, lr) -> Optimizer``.
    """
    strategy = parse_strategy(strategy)
    kind, opts = strategy.kind, strategy.options
    model.reset_classifier(num_classes)
    groups = layer_groups(model)
    by_group = _group_params(model)
    heads = head_names(model)
    if not heads or set(heads) != {n for n, _ in by_group[groups[-1]]}:
        raise ValueError(f"{type(model).__name__}: the head ({', '.join(heads) or 'no parameters'}) must be the "
                         f"last layer group ({groups[-1]}) for freeze_to and the strategies to mean what they say")
    backbone = [n for n, _ in model.named_parameters() if n not in heads]
    if kind == "layers":
        if opts["n"] >= len(groups):
            raise ValueError(f"layers:{opts['n']}: the model has {len(groups) - 1} layers before the head "
                             f"({', '.join(groups[:-1])}); n must be smaller")
        copied = [n for g in groups[:opts["n"]] for n, _ in by_group[g]]
    else:
        copied = backbone if strategy.uses_pretrained else []
    if kind in NEEDS_PRETRAINED:
        _load_pretrained(model, pretrained_state, copied if kind != "structure" else backbone,
                         strict_extra=kind != "layers", kind=kind, copy=kind != "structure")

    frozen = freeze_to(model, _frozen_count(strategy, len(groups)))

    copied_groups = {_group_of(n) for n in copied}
    mult = opts.get("lr_mult", 1.0)
    lrs = [lr * mult if g in copied_groups else lr for g in groups]
    # Every parameter goes in, frozen ones too: unfreezing later needs no new optimizer.
    param_groups = [{"params": [p for _, p in by_group[g]], "lr": glr} for g, glr in zip(groups, lrs)]
    opt = _make_optimizer(optimizer, param_groups, lr, momentum, weight_decay)

    callbacks, penalty = [], None
    if kind == "gradual":
        callbacks.append(GradualUnfreeze(model, opts["every"], optimizer=opt, frozen=frozen))
    if kind == "l2sp":
        penalty = L2SP(model, opts["alpha"], opts["beta"], anchored=backbone, free=heads)
    stochastic = any(isinstance(m, Dropout) and m.p > 0 for m in model.modules())
    return Setup(strategy=strategy, model=model, optimizer=opt, callbacks=callbacks, penalty=penalty,
                 cache_features=kind == "features" and not stochastic, frozen=frozen,
                 frozen_at_start=tuple(frozen), groups=groups, lrs=lrs, transferred=list(copied),
                 initial_state=snapshot(model))


# ---------------------------------------------------------- feature cache
@contextlib.contextmanager
def _inference(model):
    """Eval mode without a graph; every sub-module's previous mode comes back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with function.no_grad():
            yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def augments(transform) -> bool:
    """Whether a loader's ``transform`` is random (augmentation), so features differ per epoch.

    Random transforms own a NumPy generator (``.rng``, also inside ``Compose``)
    or are named ``Random...``; ``Normalize``, ``Pad`` and ``ToFloat`` are not random.
    """
    if transform is None:
        return False
    if random_generators(transform) or getattr(transform, "random", False) \
            or type(transform).__name__.startswith("Random"):
        return True
    return any(augments(t) for t in getattr(transform, "transforms", None) or ())


def cache_features(model, loader, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)``: ``model.forward_features`` of every sample, computed once.

    Runs in eval mode without a graph (modes restored). For a ``DataLoader``
    the rows follow the dataset's order, read in batches of ``batch_size``
    (default: at least 256) through its deterministic transform, without
    touching its shuffle or epoch counter; other iterables are read once, in
    their order. Features come back as NumPy arrays.
    """
    if hasattr(loader, "batch") and hasattr(loader, "labels"):
        n = len(loader.labels)
        size = batch_size or max(getattr(loader, "batch_size", 1), 256)
        batches = (loader.batch(np.arange(i, min(i + size, n))) for i in range(0, n, size))
    else:
        batches = iter(loader)
    feats, labels = [], []
    with _inference(model):
        for x, y in batches:
            feats.append(model.forward_features(x).numpy())
            labels.append(y.numpy())
    if not feats:
        raise ValueError("cache_features: the loader holds no samples")
    return np.concatenate(feats), np.concatenate(labels)


def feature_loader(model, loader):
    """A ``DataLoader`` over the cached features of ``loader``'s samples that yields
    its batches in the same order (same batch size, shuffle seed, ``drop_last``,
    device and next epoch): training the head on it matches training the whole
    frozen-backbone model on ``loader``, up to float rounding. Any other iterable
    of batches gives a list of ``(features, y)`` batches, in its order.
    """
    from .data import DataLoader

    if augments(getattr(loader, "transform", None)):
        raise ValueError("feature_loader: the loader's transform is random (augmentation), which changes "
                         "the features every epoch, so they cannot be cached")
    if not hasattr(loader, "order"):
        # Any other iterable: the same batches, each mapped through the backbone once.
        with _inference(model):
            return [(model.forward_features(x).detach(), y) for x, y in loader]
    feats, labels = cache_features(model, loader)
    cached = DataLoader((feats, labels), batch_size=loader.batch_size, shuffle=loader.shuffle,
                        drop_last=loader.drop_last, seed=loader.seed, device=loader.device)
    cached.set_epoch(loader.epoch)
    return cached
