"""Gradual unfreezing (ULMFiT / fastai): the head first, then one more layer group at a time."""
from __future__ import annotations

from .batchnorm import lock_batchnorm, release_batchnorm_params
from .groups import freeze_to, layer_groups


class GradualUnfreeze:
    """Callback for gradual unfreezing: start with all but the head frozen
    (``freeze_to(-1)``) and unfreeze one more group, from the top down, every
    ``every`` steps, until everything trains.

    ``optimizer``, when given, must already hold every parameter: otherwise a
    group would be "unfrozen but never updated", and the constructor says so.
    ``frozen``: a list kept equal to the names still frozen (``Setup.frozen``).
    Frozen BatchNorm layers stay eval-locked (``train_bn`` releases their parameters).
    The state follows from the step alone, so a resumed run re-applies it.
    """

    def __init__(self, model, every: int, optimizer=None, frozen: list | None = None, train_bn: bool = False):
        if every < 1:
            raise ValueError(f"GradualUnfreeze needs every >= 1, got {every}")
        self.model, self.every, self.train_bn = model, int(every), bool(train_bn)
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
        frozen = freeze_to(self.model, n)
        if self.train_bn and frozen:
            released = set(release_batchnorm_params(self.model))
            frozen = [f for f in frozen if f not in released]
        self.frozen[:] = frozen
        lock_batchnorm(self.model)  # a BatchNorm unfrozen now leaves eval mode at the next train()
        self._current = n

    def state_dict(self) -> dict:
        """When each group was unfrozen (the freezing itself follows from the step)."""
        return {"unfrozen_at": dict(self.unfrozen_at)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (``fit`` does this when resuming)."""
        self.unfrozen_at = dict(state["unfrozen_at"])

    on_train_begin = _apply
    on_step_end = _apply
