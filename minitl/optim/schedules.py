"""Learning-rate schedules: each sets ``group['lr']`` from a closed form of the step count.

Call ``scheduler.step()`` after ``optimizer.step()``, as in PyTorch.
"""
from __future__ import annotations

import math


class LRScheduler:
    """Base: remembers each group's initial lr and applies ``factor``/``lr_at`` per step."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def lr_at(self, base_lr: float, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self):
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_step)

    def step(self) -> None:
        """Advance one step and set the new learning rates."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list:
        """The learning rate of each group now."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def check_state_dict(self, state) -> None:
        """Raise ``ValueError`` unless ``state`` is what :meth:`state_dict` returns for this optimizer."""
        ok = (isinstance(state, dict) and set(state) == {"last_step", "base_lrs"}
              and isinstance(state["last_step"], int) and not isinstance(state["last_step"], bool)
              and state["last_step"] >= -1 and isinstance(state["base_lrs"], (list, tuple))
              and len(state["base_lrs"]) == len(self.base_lrs)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in state["base_lrs"]))
        if not ok:
            raise ValueError(f"{type(self).__name__}.load_state_dict wants {{'last_step': int, 'base_lrs': "
                             f"[{len(self.base_lrs)} numbers]}}, got {state!r:.200}")

    def state_dict(self) -> dict:
        """The step count and base learning rates (what a checkpoint keeps)."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        """Put back :meth:`state_dict`'s result (checked first)."""
        self.check_state_dict(state)
        self.last_step, self.base_lrs = state["last_step"], list(state["base_lrs"])
        self._apply()


class StepLR(LRScheduler):
    """lr = base * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base, t):
        return base * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2, flat after T_max."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base, t):
        t = min(t, self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """lr rises linearly from ``start_factor * base`` to ``base`` over ``warmup_steps``, then stays."""

    def __init__(self, optimizer, warmup_steps: int, start_factor: float = 0.1):
        if warmup_steps < 1 or not 0 <= start_factor <= 1:
            raise ValueError(f"LinearWarmup needs warmup_steps >= 1 and 0 <= start_factor <= 1, "
                             f"got {warmup_steps}, {start_factor}")
        self.warmup_steps, self.start_factor = warmup_steps, start_factor
        super().__init__(optimizer)

    def lr_at(self, base, t):
        frac = min(t, self.warmup_steps) / self.warmup_steps
        return base * (self.start_factor + (1 - self.start_factor) * frac)


class OneCycleLR(LRScheduler):
    """PyTorch's one-cycle policy (cosine): from max_lr/div_factor up to max_lr over
    ``pct_start`` of the steps, then down to initial/final_div_factor at the last step."""

    def __init__(self, optimizer, max_lr, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        if total_steps < 2 or not 0 < pct_start < 1:
            raise ValueError(f"OneCycleLR needs total_steps >= 2 and 0 < pct_start < 1, got {total_steps}, {pct_start}")
        n = len(optimizer.param_groups)
        self.max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * n
        self.total_steps, self.div, self.final_div = total_steps, div_factor, final_div_factor
        self.peak = float(pct_start * total_steps) - 1
        for g, m in zip(optimizer.param_groups, self.max_lrs):
            g["initial_lr"] = m / div_factor
        self._group = 0
        super().__init__(optimizer)

    def _apply(self):
        for i, g in enumerate(self.optimizer.param_groups):
            self._group = i
            g["lr"] = self.lr_at(self.base_lrs[i], self.last_step)

    def lr_at(self, base, t):
        top = self.max_lrs[self._group]
        low = base / self.final_div

        def cos(a, b, frac):
            return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2

        if t <= self.peak:
            return cos(base, top, t / self.peak) if self.peak > 0 else top
        end = self.total_steps - 1
        return cos(top, low, min((t - self.peak) / (end - self.peak), 1.0))
