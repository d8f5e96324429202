"""``prepare``: a model made ready for a transfer strategy, and the ``Setup`` that trains it.

    setup = prepare("finetune:lr_mult=0.1", LeNet(), load("source.safetensors"), num_classes=5, lr=0.01)
    history = setup.fit(train_loader, steps=300, eval_loader=test_loader)
    report = setup.audit()          # raises if a frozen weight moved or a freezing strategy froze nothing

Every strategy gets one optimizer parameter group per layer group, holding
every parameter (frozen ones too), so a parameter unfrozen mid-training is
updated from the next step on.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .. import nn, optim
from ..train import evaluate, fit
from .batchnorm import lock_batchnorm, release_batchnorm_params
from .drift import AuditReport, audit, snapshot
from .features import FeatureCache, backbone_is_deterministic, why_not_cacheable
from .groups import frozen_count, freeze_to, group_of, group_params, groups_by_name, head_names, layer_groups
from .l2sp import L2SP
from .strategies import NEEDS_PRETRAINED, Strategy, head_spec, parse_strategy
from .unfreeze import GradualUnfreeze


@dataclass
class Setup:
    """A model made ready for a strategy, with what training it needs.

    ``frozen``: parameter names frozen so far (``GradualUnfreeze`` shrinks it);
    ``frozen_at_start``: those frozen by :func:`prepare`; ``groups``: the layer
    groups, one optimizer parameter group each, in order; ``lrs``: their
    learning rates; ``transferred``: names copied from the pretrained weights;
    ``initial_state``: copies of every parameter and buffer after
    :func:`prepare` (the audit's reference); ``locked_bn``: the BatchNorm
    layers kept in eval mode (frozen ones, or all with ``bn=frozen``).
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
    locked_bn: list = field(default_factory=list)

    def fit(self, loader, *, steps=None, epochs=None, eval_loader=None, cache=None, feature_cache=None,
            callbacks=(), **kwargs):
        """Train with :func:`minitl.train.fit`, adding this setup's callbacks and penalty.

        ``cache``: None uses the frozen-feature cache when ``cache_features`` is
        True and the features can be cached (:func:`~minitl.transfer.features.why_not_cacheable`:
        no random transform, no dropout); True insists (raising if impossible);
        False never caches. The cached path trains ``model.head`` on the
        features' batches and leaves ``loader``'s epoch counter where the
        uncached path would; callbacks then see the head as ``state.model`` and a
        checkpoint holds the head only. ``feature_cache``: a :class:`FeatureCache`
        to share between runs (the experiment grid passes one). Other keyword
        arguments go to ``fit`` as they are.
        """
        kwargs.update(steps=steps, epochs=epochs, callbacks=list(self.callbacks) + list(callbacks),
                      penalty=self.penalty)
        if not self.uses_cache(loader, cache):
            return fit(self.model, loader, self.optimizer, eval_loader=eval_loader, **kwargs)
        store = feature_cache if feature_cache is not None else FeatureCache()
        train_feats = store.loader(self.model, loader)
        eval_feats = store.loader(self.model, eval_loader) if eval_loader is not None else None
        history = fit(self.model.head, train_feats, self.optimizer, eval_loader=eval_feats, **kwargs)
        if hasattr(train_feats, "epoch"):
            loader.set_epoch(train_feats.epoch)
        return history

    def evaluate(self, loader, *, cache=None, feature_cache=None, **kwargs) -> dict:
        """:func:`minitl.train.evaluate` of the model, through the feature cache when
        :meth:`fit` would use it (``cache`` and ``feature_cache`` as there)."""
        if not self.uses_cache(loader, cache):
            return evaluate(self.model, loader, **kwargs)
        store = feature_cache if feature_cache is not None else FeatureCache()
        return evaluate(self.model.head, store.loader(self.model, loader), **kwargs)

    def uses_cache(self, loader, cache=None) -> bool:
        """Whether to train on cached features: the one rule of ``fit`` and ``evaluate``."""
        why = why_not_cacheable(self.model, loader)
        if cache is None:
            return self.cache_features and why is None
        if cache and not self.cache_features:
            raise ValueError(f"cannot cache features for strategy {self.strategy.name!r}: "
                             "its backbone is not frozen and deterministic")
        if cache and why is not None:
            raise ValueError(f"cannot cache features for strategy {self.strategy.name!r}: {why}")
        return bool(cache)

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
    known = set(model.state_dict())
    head_prefix = next((n for n, m in model.named_modules() if m is model.head), None)
    # The pretrained head (any shape, any structure) is replaced: its keys are never "extra".
    extra = [k for k in pretrained_state if k not in known and k not in heads
             and not (head_prefix and k.startswith(head_prefix + "."))]
    if strict_extra and extra:
        raise ValueError(f"strategy {kind!r}: the pretrained weights hold {', '.join(extra)}, which this model "
                         "does not have: a different architecture?")
    if copy:
        state = OrderedDict(model.state_dict())
        for n in names:
            state[n] = pretrained_state[n]
        # A copied BatchNorm brings its running statistics: the buffers of the copied layers.
        groups = {group_of(n) for n in names}
        buffers = [b for b, _ in model.named_buffers(persistent_only=True) if group_of(b) in groups]
        for b in buffers:
            if b in pretrained_state and tuple(pretrained_state[b].shape) == tuple(state[b].shape):
                state[b] = pretrained_state[b]
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


def _new_head(model, spec: str, num_classes: int):
    """``head=mlpN[dP]``: Linear(F, N) -> ReLU [-> Dropout(P)] -> Linear(N, classes) in place of the head."""
    hidden, p = head_spec(spec)
    if not hasattr(model, "replace_head"):
        raise ValueError(f"head={spec}: {type(model).__name__} has no replace_head()")
    layers = [nn.Linear(model.num_features, hidden), nn.ReLU()] + ([nn.Dropout(p)] if p else [])
    model.replace_head(nn.Sequential(*layers, nn.Linear(hidden, num_classes)))


def prepare(strategy, model, pretrained_state, num_classes: int, lr: float, optimizer="sgd",
            momentum: float = 0.9, weight_decay: float = 0.0, train_bn: bool = False) -> Setup:
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
    callable ``(param_groups, lr) -> Optimizer``; the strategy's ``opt=`` wins.
    The strategy's ``head=mlpN[dP]`` replaces the head by a two-layer one.

    BatchNorm: a BatchNorm whose layer group is frozen is eval-locked (stays
    in eval mode, its statistics do not move); ``train_bn=True`` (or the
    strategy's ``train_bn=1``) keeps the BatchNorm parameters of a frozen
    backbone trainable (fastai); ``finetune:bn=frozen`` eval-locks every
    BatchNorm while all parameters train.
    """
    strategy = parse_strategy(strategy)
    kind, opts = strategy.kind, strategy.options
    model.reset_classifier(num_classes)
    if opts["head"] != "linear":
        _new_head(model, opts["head"], num_classes)
    if opts["opt"] != "default":
        optimizer = opts["opt"]
    groups = layer_groups(model)
    by_group = group_params(model)
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

    frozen = freeze_to(model, frozen_count(strategy, len(groups)))
    train_bn = bool(train_bn or opts.get("train_bn"))
    if train_bn and frozen:
        released = set(release_batchnorm_params(model))
        frozen = [n for n in frozen if n not in released]
    locked = lock_batchnorm(model, all_bn=strategy.bn_frozen)

    copied_groups = {groups_by_name(model)[n] for n in copied}
    mult = opts.get("lr_mult", 1.0)
    lrs = [lr * mult if g in copied_groups else lr for g in groups]
    # Every parameter goes in, frozen ones too: unfreezing later needs no new optimizer.
    param_groups = [{"params": [p for _, p in by_group[g]], "lr": glr} for g, glr in zip(groups, lrs)]
    opt = _make_optimizer(optimizer, param_groups, lr, momentum, weight_decay)

    callbacks, penalty = [], None
    if kind == "gradual":
        callbacks.append(GradualUnfreeze(model, opts["every"], optimizer=opt, frozen=frozen, train_bn=train_bn))
    if kind == "l2sp":
        penalty = L2SP(model, opts["alpha"], opts["beta"], anchored=backbone, free=heads)
    return Setup(strategy=strategy, model=model, optimizer=opt, callbacks=callbacks, penalty=penalty,
                 cache_features=kind == "features" and backbone_is_deterministic(model), frozen=frozen,
                 frozen_at_start=tuple(frozen), groups=groups, lrs=lrs, transferred=list(copied),
                 initial_state=snapshot(model), locked_bn=locked)
