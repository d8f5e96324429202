"""Layer groups and freezing: the units every strategy freezes, trains and gives a learning rate.

A model's *layer groups* are the modules that own parameters, in order; for
LeNet ``[features.0, features.3, classifier.0, classifier.2, classifier.4]``,
the last being the head.
"""
from __future__ import annotations

from collections import OrderedDict

from .strategies import Strategy, parse_strategy


def group_of(name: str) -> str:
    """The module prefix owning parameter ``name`` (``'classifier.4.weight'`` -> ``'classifier.4'``)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def layer_groups(model) -> list[str]:
    """Names of the modules that own parameters, in parameter order (the head last)."""
    groups = []
    for name, _ in model.named_parameters():
        g = group_of(name)
        if g not in groups:
            groups.append(g)
    return groups


def head_names(model) -> list[str]:
    """Parameter names of ``model.head`` (the layer ``reset_classifier`` replaces)."""
    ids = {id(p) for p in model.head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def group_params(model) -> "OrderedDict[str, list]":
    out = OrderedDict((g, []) for g in layer_groups(model))
    for name, p in model.named_parameters():
        out[group_of(name)].append((name, p))
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
        if group_of(name) in frozen_groups:
            p.requires_grad = False
            p.grad = None
            frozen.append(name)
        else:
            p.requires_grad = True
    return frozen


def frozen_count(strategy: Strategy, n_groups: int) -> int:
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
    chosen = set(groups[:frozen_count(strategy, len(groups))])
    return [n for n, _ in model.named_parameters() if group_of(n) in chosen]
