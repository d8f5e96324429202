"""``Function``: a differentiable op's node in the graph.

A ``Function`` subclass pairs ``forward(ctx, *arrays)`` on raw NumPy/CuPy
arrays with ``backward(ctx, grad)`` returning one gradient array (or None)
per positional input. ``Function.apply`` records the parents only when grad
mode is on and some input requires a gradient, so inference builds no graph.
The ops themselves live in :mod:`minitl.ops`.
"""
from __future__ import annotations

from . import grad_mode
from .tensor import Tensor


class Context:
    """Per-call scratch space: what forward saves for backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.freed = False

    def save_for_backward(self, *arrays):
        """Keep arrays for backward (freed after backward unless retained)."""
        self.saved = arrays

    def free(self):
        """Drop everything saved, keeping only the fact that it is gone."""
        needs = self.needs_input_grad
        self.__dict__.clear()
        self.needs_input_grad = needs
        self.freed = True


class Function:
    """A differentiable op; subclasses define ``forward`` and ``backward``."""

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the inputs' arrays and link the result into the graph."""
        device = None
        arrays = []
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise RuntimeError(
                        f"{cls.__name__}: expected all tensors on one device, "
                        f"found '{device}' and '{a.device}'; move them with .to(device)"
                    )
                arrays.append(a.data)
            else:
                arrays.append(a)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        track = grad_mode._grad_enabled and any(needs)
        ctx = Context(needs)
        out = Tensor._make(cls.forward(ctx, *arrays, **kwargs), requires_grad=track)
        if track:
            out._fn = cls
            out._ctx = ctx
            out._parents = tuple(a if n else None for a, n in zip(args, needs))
        return out
