"""Layer groups and freezing: the units every strategy freezes, trains and gives a learning rate.

A model's *layer groups* are the modules that own parameters, in order; for
LeNet ``[features.0, features.3, classifier.0, classifier.2, classifier.4]``,
the last being the head. The head is always one group, even when it is a
multi-layer module (``replace_head(Sequential(Linear, ReLU, Linear))`` gives
one group ``fc``). A BatchNorm owns parameters, so it is a group of its own,
right after its conv: ``freeze_to`` freezes them together (they are adjacent)
and ``train_bn`` can release the BatchNorm alone (see ``batchnorm.py``).
"""
from __future__ import annotations

from collections import OrderedDict

from .batchnorm import batchnorm_modules
from .strategies import Strategy, parse_strategy


def group_of(name: str) -> str:
    """The module prefix owning parameter ``name`` (``'classifier.4.weight'`` -> ``'classifier.4'``)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def _head_prefix(model):
    head = getattr(model, "head", None)
    if head is None:
        return None, set()
    prefix = next((n for n, m in model.named_modules() if m is head), None)
    return prefix, {id(p) for p in head.parameters()}


def groups_by_name(model) -> "OrderedDict[str, str]":
    """``{parameter name: its layer group}``: the owning module, or the head as a whole."""
    prefix, head_ids = _head_prefix(model)
    return OrderedDict((n, prefix if id(p) in head_ids and prefix is not None else group_of(n))
                       for n, p in model.named_parameters())


def layer_groups(model) -> list[str]:
    """Names of the modules that own parameters, in parameter order (the head last, as one group)."""
    groups = []
    for g in groups_by_name(model).values():
        if g not in groups:
            groups.append(g)
    return groups


def head_names(model) -> list[str]:
    """Parameter names of ``model.head`` (the layer ``reset_classifier`` replaces)."""
    ids = {id(p) for p in model.head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def group_params(model) -> "OrderedDict[str, list]":
    """``{layer group: [(name, parameter), ...]}`` in order."""
    out = OrderedDict((g, []) for g in layer_groups(model))
    by_name = groups_by_name(model)
    for name, p in model.named_parameters():
        out[by_name[name]].append((name, p))
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
    by_name = groups_by_name(model)
    for name, p in model.named_parameters():
        if by_name[name] in frozen_groups:
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
    plan = [n for n, g in groups_by_name(model).items() if g in chosen]
    if strategy.options.get("train_bn"):
        bn = {f"{m}.{p}" if m else p for m, mod in batchnorm_modules(model) for p, _ in mod.named_parameters()}
        plan = [n for n in plan if n not in bn]
    return plan
