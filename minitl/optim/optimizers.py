"""Optimizers with PyTorch's update rules and parameter groups.

The arithmetic runs in one kernel call per group (``sgd_step`` / ``adam_step``
through the dispatch point), over every parameter that is trainable and has a
gradient. Frozen parameters are kept in the groups, so unfreezing one later
makes the optimizer update it from the next step (no silent "unfrozen but
never updated").
"""
from __future__ import annotations

import copy

import numpy as np

from .. import kernels
from ..core import backend


def _is_number(v) -> bool:
    """A real number (Python or NumPy scalar, or a 0-d array), not a bool."""
    if isinstance(v, (bool, np.bool_)):
        return False
    return isinstance(v, (int, float, np.integer, np.floating)) or (hasattr(v, "shape") and np.ndim(v) == 0
                                                                    and v.dtype.kind in "iuf")


def _same_kind(saved, mine) -> bool:
    """Whether a saved group option can stand in for this optimizer's (numbers for numbers, ...)."""
    if isinstance(mine, bool) or mine is None:
        return isinstance(saved, bool) if isinstance(mine, bool) else (saved is None or _is_number(saved))
    if _is_number(mine):
        return _is_number(saved) or (saved is None)
    if isinstance(mine, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(mine) and \
            all(_same_kind(a, b) for a, b in zip(saved, mine))
    return type(saved) is type(mine)


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad, state_dict."""

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group: ``{'params': [...], **options}``; unset options take the defaults."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if hasattr(params, "data") else list(params)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if id(p) in seen:
                raise ValueError("a parameter appears in more than one parameter group")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer parameters must be floating point, got dtype {p.dtype}")
        self.param_groups.append(group)

    def _trainable(self, group):
        """Parameters of ``group`` that are unfrozen and received a gradient."""
        return [p for p in group["params"] if p.requires_grad and p.grad is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter in every group."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """One update; ``closure`` (re-evaluating the loss) is called first if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = self._trainable(group)
            if params:
                self._update(group, params)
        return loss

    def _update(self, group, params):  # pragma: no cover - abstract
        raise NotImplementedError

    # -------------------------------------------------------------- state
    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """Options per group and per-parameter state (arrays copied to NumPy), by position."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {
            index[pid]: {k: (backend.to_device(v, "cpu").copy() if hasattr(v, "shape") else v) for k, v in s.items()}
            for pid, s in self.state.items() if pid in index
        }
        groups = []
        for g in self.param_groups:
            entry = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            entry["params"] = [index[id(p)] for p in g["params"]]
            groups.append(entry)
        return {"state": state, "param_groups": groups}

    def check_state_dict(self, state_dict) -> None:
        """Raise ``ValueError`` naming the first thing in ``state_dict`` that this optimizer
        cannot take (groups, parameter counts, options, state shapes); changes nothing."""
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("param_groups"), list) \
                or not isinstance(state_dict.get("state"), dict):
            raise ValueError("optimizer state must be the dict Optimizer.state_dict() returns, with "
                             "'state' (a dict) and 'param_groups' (a list)")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, this optimizer {len(self.param_groups)}")
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
                raise ValueError(f"parameter group {i}: not a dict with a 'params' list")
            if len(saved["params"]) != len(mine["params"]):
                raise ValueError(f"parameter group {i}: state has {len(saved['params'])} parameters, "
                                 f"optimizer has {len(mine['params'])}")
            differ = (set(saved) ^ set(mine)) - {"initial_lr"}  # a scheduler adds initial_lr
            if differ:
                raise ValueError(f"parameter group {i}: options {sorted(saved)}, this optimizer has "
                                 f"{sorted(mine)} (differ in {sorted(differ)})")
            for k, v in saved.items():
                if k != "params" and k in mine and not _same_kind(v, mine[k]):
                    raise ValueError(f"parameter group {i}: option {k!r} is {v!r}, expected a value like {mine[k]!r}")
        params = self._all_params()
        for idx, s in state_dict["state"].items():
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(params):
                raise ValueError(f"optimizer state for parameter {idx!r}: expected an index in 0..{len(params) - 1}")
            if not isinstance(s, dict) or not all(isinstance(k, str) for k in s):
                raise ValueError(f"optimizer state for parameter {idx}: not a dict of named values")
            for k, v in s.items():
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != params[idx].shape:
                        raise ValueError(f"optimizer state '{k}' for parameter {idx} has shape {tuple(v.shape)}, "
                                         f"parameter has {params[idx].shape}")
                    if getattr(v, "dtype", None) is None or v.dtype.kind != "f":
                        raise ValueError(f"optimizer state '{k}' for parameter {idx} is not a float array")
                elif not _is_number(v):
                    raise ValueError(f"optimizer state '{k}' for parameter {idx} is {v!r}, not an array or number")

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned; checked whole (:meth:`check_state_dict`) first."""
        self.check_state_dict(state_dict)
        groups = state_dict["param_groups"]
        params = self._all_params()
        self.state = {}
        for idx, s in state_dict["state"].items():
            p = params[int(idx)]
            entry = {}
            for k, v in s.items():
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    v = backend.to_device(v, p.device).astype(p.dtype, copy=True)
                entry[k] = v
            self.state[id(p)] = entry
        for saved, mine in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    mine[k] = v

    def _buffer(self, p, name):
        """The state array ``name`` of ``p``; (array, fresh) with fresh zeros if new."""
        st = self.state.setdefault(id(p), {})
        if name not in st:
            st[name] = backend.xp_for(p.device).zeros(p.shape, dtype=p.dtype)
            return st[name], True
        return st[name], False


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov and (L2) weight decay, as PyTorch."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD needs lr, momentum, weight_decay >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                      weight_decay=weight_decay))

    def _update(self, group, params):
        step = kernels.get("sgd_step", params[0].device)
        opts = (group["lr"], group["momentum"], group["dampening"], group["nesterov"], group["weight_decay"])
        if not group["momentum"]:
            step([p.data for p in params], [p.grad.data for p in params], [None] * len(params), *opts, False)
            return
        # PyTorch starts a momentum buffer at the first gradient: fresh buffers go in a call of their own.
        fresh, warm = [], []
        for p in params:
            buf, new = self._buffer(p, "momentum_buffer")
            (fresh if new else warm).append((p, buf))
        for batch, first in ((fresh, True), (warm, False)):
            if batch:
                step([p.data for p, _ in batch], [p.grad.data for p, _ in batch], [b for _, b in batch],
                     *opts, first)


class Adam(Optimizer):
    """Adam; ``weight_decay`` is L2 added to the gradient (see AdamW for decoupled)."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, group, params):
        step_fn = kernels.get("adam_step", params[0].device)
        by_step: dict[int, list] = {}
        for p in params:
            m, _ = self._buffer(p, "exp_avg")
            v, _ = self._buffer(p, "exp_avg_sq")
            st = self.state[id(p)]
            st["step"] = st.get("step", 0) + 1
            by_step.setdefault(st["step"], []).append((p, m, v))
        b1, b2 = group["betas"]
        # Parameters unfrozen later have fewer steps: one call per step count.
        for t, batch in by_step.items():
            step_fn([p.data for p, _, _ in batch], [p.grad.data for p, _, _ in batch],
                    [m for _, m, _ in batch], [v for _, _, v in batch], t, group["lr"], b1, b2,
                    group["eps"], group["weight_decay"], self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as PyTorch)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
