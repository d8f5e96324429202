"""``Module``: parameters, buffers and sub-modules by name, state_dict, freezing, devices.

A *buffer* is state that is not trained but belongs to the model (BatchNorm's
running statistics): it is a Tensor that never requires a gradient, it is in
``state_dict`` (after the module's parameters, as in PyTorch), it moves with
``.to(device)`` and it is saved and loaded with the weights.
"""
from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core import backend
from ..core.tensor import Tensor
from .parameter import Parameter


@dataclass
class LoadReport:
    """What :meth:`Module.load_state_dict` did, key by key."""

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, expected shape, given shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"missing from the file: {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in the file: {', '.join(self.unexpected)}")
        for key, want, got in self.mismatched:
            lines.append(f"shape mismatch for {key}: model has {want}, file has {got} (skipped)")
        return "; ".join(lines)


class Module:
    """Base class of layers and models: override ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        params, modules = self.__dict__["_parameters"], self.__dict__["_modules"]
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers and not isinstance(value, (Parameter, Module)):
            buffers[name] = _as_buffer(name, value)
            return
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        if name in d.get("_parameters", {}):
            return d["_parameters"][name]
        if name in d.get("_modules", {}):
            return d["_modules"][name]
        if name in d.get("_buffers", {}):
            return d["_buffers"][name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        elif name in self._buffers:
            del self._buffers[name]
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (None removes it, e.g. a layer built without bias)."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        """Add a buffer: an array or Tensor kept with the model but not trained (None
        registers an empty slot). ``persistent=False`` keeps it out of ``state_dict``."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise ValueError(f"{type(self).__name__} already has a parameter or module named {name!r}")
        self.__dict__.pop(name, None)
        self._buffers[name] = _as_buffer(name, value)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    # -------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def children(self):
        """Direct sub-modules."""
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(kids))

    def modules(self):
        """This module and every descendant."""
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) for every parameter, in registration order."""
        seen = set()
        for mname, mod in self.named_modules(prefix):
            for pname, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self):
        """Every parameter (frozen ones included, as in PyTorch)."""
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix: str = "", persistent_only: bool = False):
        """(dotted name, Tensor) for every buffer that is set, in registration order."""
        for mname, mod in self.named_modules(prefix):
            skip = mod.__dict__.get("_non_persistent", ()) if persistent_only else ()
            for bname, b in mod._buffers.items():
                if b is not None and bname not in skip:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self):
        """Every buffer that is set."""
        return (b for _, b in self.named_buffers())

    def _named_state(self):
        """(name, Tensor) of the state_dict: per module, its parameters then its
        persistent buffers (PyTorch's order, so torchvision's key lists match)."""
        seen = set()
        for mname, mod in self.named_modules():
            skip = mod.__dict__.get("_non_persistent", ())
            items = list(mod._parameters.items()) + [(k, b) for k, b in mod._buffers.items()
                                                     if b is not None and k not in skip]
            for name, t in items:
                if id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        """Training mode (dropout active, BatchNorm on batch statistics); returns self.

        A module with ``eval_locked = True`` (a frozen BatchNorm, see
        ``minitl.transfer.batchnorm``) stays in eval mode whatever ``mode`` says.
        """
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode) and not m.__dict__.get("eval_locked", False))
        return self

    def eval(self):
        """Evaluation mode; returns self."""
        return self.train(False)

    def to(self, device):
        """Move every parameter and buffer to ``device`` in place (optimizers keep their references)."""
        device = backend.normalize_device(device)
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad = Tensor._make(backend.to_device(p.grad.data, device))
        for b in self.buffers():
            b.data = backend.to_device(b.data, device)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    # ------------------------------------------------------------ state_dict
    def state_dict(self) -> "OrderedDict[str, object]":
        """Flat ``{dotted.name: array}`` of the parameters and persistent buffers (arrays are not copies)."""
        return OrderedDict((k, t.data) for k, t in self._named_state())

    def load_state_dict(self, state_dict, strict: bool = True) -> LoadReport:
        """Copy arrays into the parameters by name and shape; report what happened.

        ``strict=True`` raises a ValueError, before changing anything, on any
        missing, unexpected or shape-mismatched key. ``strict=False`` loads
        what matches and skips mismatched shapes (never broadcasts them).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict({type(self).__name__}) wants a mapping of parameter names "
                            f"to arrays (such as model.state_dict() or minitl.io.load(path)), "
                            f"not {type(state_dict).__name__}")
        params = dict(self._named_state())
        report = LoadReport()
        ready = []
        for key, value in state_dict.items():
            if key not in params:
                report.unexpected.append(key)
                continue
            arr = value.data if isinstance(value, Tensor) else value
            if not hasattr(arr, "shape"):
                arr = np.asarray(arr)
            p = params[key]
            if tuple(arr.shape) != p.shape:
                report.mismatched.append((key, p.shape, tuple(arr.shape)))
                continue
            ready.append((p, arr))
            report.loaded.append(key)
        report.missing = [k for k in params if k not in state_dict]
        if strict and not report.ok:
            raise ValueError(f"load_state_dict({type(self).__name__}, strict=True): {report}")
        for p, arr in ready:
            p.data = backend.to_device(arr, p.device).astype(p.dtype, copy=True)
        return report


    # ------------------------------------------------------------- freezing
    def _select(self, pattern):
        """Names of parameters matched by a glob, a name prefix, a Module, or a list of those."""
        named = list(self.named_parameters())
        if pattern is None:
            return [n for n, _ in named]
        patterns = pattern if isinstance(pattern, (list, tuple)) else [pattern]
        chosen = []
        for pat in patterns:
            if isinstance(pat, Module):
                ids = {id(p) for p in pat.parameters()}
                hits = [n for n, p in named if id(p) in ids]
            else:
                hits = [n for n, _ in named
                        if n == pat or n.startswith(pat + ".") or fnmatch.fnmatchcase(n, pat)]
            if not hits:
                names = ", ".join(n for n, _ in named)
                raise ValueError(f"{pat!r} matches no parameter of {type(self).__name__}; parameters are: {names}")
            chosen.extend(h for h in hits if h not in chosen)
        return chosen

    def freeze(self, pattern=None) -> list:
        """Stop gradients for matched parameters (all when None); returns their names."""
        names = self._select(pattern)
        params = dict(self.named_parameters())
        for n in names:
            params[n].requires_grad = False
            params[n].grad = None
        return names

    def unfreeze(self, pattern=None) -> list:
        """Let matched parameters (all when None) train again; returns their names."""
        names = self._select(pattern)
        params = dict(self.named_parameters())
        for n in names:
            params[n].requires_grad = True
        return names

    def count_parameters(self) -> tuple[int, int]:
        """(trainable, frozen) element counts."""
        trainable = frozen = 0
        for p in self.parameters():
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        return trainable, frozen

    # ----------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def _tree(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            sub = m._tree().replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def __repr__(self) -> str:
        trainable, frozen = self.count_parameters()
        return f"{self._tree()}\n# parameters: {trainable:,} trainable, {frozen:,} frozen"


def _as_buffer(name, value):
    """A buffer value as a Tensor that never requires a gradient (None stays None)."""
    if value is None:
        return None
    if isinstance(value, Parameter):
        raise ValueError(f"buffer {name!r}: a Parameter is trained; register it with register_parameter")
    if isinstance(value, Tensor):
        return Tensor._make(value.data) if value.requires_grad else value
    arr = np.asarray(value) if not hasattr(value, "shape") else value
    return Tensor._make(arr)
