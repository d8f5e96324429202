"""BatchNorm under transfer: which BatchNorm layers are frozen, kept in eval mode.

A "frozen" BatchNorm in train mode still moves: its running statistics follow
every batch of the new task. So a BatchNorm whose parameters are all frozen
(its layer group is frozen), or every BatchNorm when the strategy says
``bn=frozen``, is *eval-locked*: ``Module.train()`` leaves it in eval mode,
its running statistics stay bit-identical and the audit checks them.
``train_bn=True`` (fastai's option) keeps the affine parameters of the
BatchNorm layers of a frozen backbone trainable, and so in train mode.

BatchNorm layers are their own layer groups (they own parameters): a conv and
its BatchNorm are frozen together by ``freeze_to`` because they are adjacent,
and ``train_bn`` can release the BatchNorm alone.
"""
from __future__ import annotations

from ..nn.norm import _BatchNorm


def batchnorm_modules(model) -> list:
    """``(name, module)`` of every BatchNorm layer, in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BatchNorm)]


def is_frozen_bn(module) -> bool:
    """A BatchNorm with parameters, none of them trainable."""
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def lock_batchnorm(model, all_bn: bool = False) -> list[str]:
    """Eval-lock the frozen BatchNorm layers (every one when ``all_bn``), release the others.

    Returns the locked modules' names. Call again after (un)freezing.
    """
    locked = []
    for name, m in batchnorm_modules(model):
        lock = all_bn or is_frozen_bn(m)
        was = m.__dict__.get("eval_locked", False)
        object.__setattr__(m, "eval_locked", lock)
        if lock:
            object.__setattr__(m, "training", False)
            locked.append(name)
        elif was:  # released mid-training (gradual unfreezing): follow the model's mode again
            object.__setattr__(m, "training", model.training)
    return locked


def release_batchnorm_params(model) -> list[str]:
    """``train_bn``: make every BatchNorm parameter trainable; returns their names."""
    ids = {id(p) for _, m in batchnorm_modules(model) for p in m.parameters()}
    names = []
    for n, p in model.named_parameters():
        if id(p) in ids:
            p.requires_grad = True
            names.append(n)
    return names


def frozen_buffers(model, frozen_params, all_bn: bool = False) -> list[str]:
    """Buffer names that must not move: those of every BatchNorm whose parameters
    are all in ``frozen_params`` (every BatchNorm when ``all_bn``)."""
    frozen_params = set(frozen_params)
    out = []
    for name, m in batchnorm_modules(model):
        pnames = [f"{name}.{p}" if name else p for p, _ in m.named_parameters()]
        if all_bn or (pnames and all(p in frozen_params for p in pnames)):
            out += [f"{name}.{b}" if name else b for b, _ in m.named_buffers()]
    return out


def bn_batch_dependent(model, skip=()) -> str | None:
    """Why some BatchNorm outside ``skip`` (module names) makes features depend on
    the batch (train mode, not eval-locked, or no running statistics), or None."""
    for name, m in batchnorm_modules(model):
        if name in skip:
            continue
        if not m.track_running_stats:
            return f"BatchNorm {name} has no running statistics, so it normalises with each batch's"
        if not m.__dict__.get("eval_locked", False):
            return (f"BatchNorm {name} is not frozen in eval mode (it trains, e.g. train_bn=True), so its "
                    "output depends on the batch")
    return None
