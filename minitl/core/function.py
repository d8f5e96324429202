"""``Function``: a differentiable op's node in the graph.

A ``Function`` subclass pairs ``forward(ctx, *arrays)`` on raw NumPy/CuPy
arrays with ``backward(ctx, grad)`` returning one gradient array (or None)
per positional input. ``Function.apply`` records the parents only when grad
mode is on and some input requires a gradient, so inference builds no graph.
The ops themselves live in :mod:`minitl.ops`.
"""
from __future__ import annotations

import numpy as np

from . import grad_mode
from .backend import device_of
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

    # True: before backward, ``ctx.grad_buffers`` holds per input the array of
    # its ``.grad`` that may be added into in place (or None); backward may add
    # its gradient there and return ``autograd.ACCUMULATED`` for that input.
    adds_into_grads = False

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the inputs' arrays and link the result into the graph."""
        # One pass over the inputs: unwrap, check the device, note who needs a
        # gradient (this runs for every op, so it is written for the common case:
        # NumPy arrays, told apart by their type alone).
        device = None
        arrays = []
        needs = []
        parents = []
        track = False
        for a in args:
            if isinstance(a, Tensor):
                data = a.data
                if type(a) is Tensor or type(a).device is _ARRAY_DEVICE:
                    d = "cpu" if type(data) is _ndarray else device_of(data)
                else:
                    d = a.device  # a subclass that defines its own device
                if device is None:
                    device = d
                elif d != device:
                    raise RuntimeError(
                        f"{cls.__name__}: expected all tensors on one device, "
                        f"found '{device}' and '{d}'; move them with .to(device)"
                    )
                arrays.append(data)
                r = a.requires_grad
                needs.append(r)
                parents.append(a if r else None)
                track = track or r
            else:
                arrays.append(a)
                needs.append(False)
                parents.append(None)
        track = track and grad_mode._grad_enabled
        ctx = Context(tuple(needs))
        out = _make(cls.forward(ctx, *arrays, **kwargs), track)
        if track:
            out._fn = cls
            out._ctx = ctx
            out._parents = tuple(parents)
        return out


_ndarray = np.ndarray
_ARRAY_DEVICE = Tensor.device  # the property: the device is the array's
_make = Tensor._make
