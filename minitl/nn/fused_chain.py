"""Running a Sequential's ``Linear -> act -> Linear -> act ...`` run in one call.

Nothing outside a Sequential sees the tensors between its layers, so a run of
fused Linear steps needs neither a Tensor nor a graph node per layer: with no
gradient to record it is a loop of kernel calls on raw arrays
(:func:`minitl.ops.linear_chain.linear_chain_infer`); in training it is one
:class:`minitl.ops.linear_chain.LinearChain` node. Whenever the inputs are
anything but the plain case (not a 2-D Tensor, a mismatched shape or device,
a weight that is not a Parameter, one parameter used twice), the layers run one
by one, so the errors and results are exactly those of ``Linear.forward``.
"""
from __future__ import annotations

import numpy as np

from ..core import grad_mode
from ..core.backend import device_of
from ..core.tensor import Tensor
from ..ops.linear_chain import LinearChain, linear_chain_infer


def _device(a) -> str:
    return "cpu" if type(a) is np.ndarray else device_of(a)


def _one_by_one(x, chain):
    for layer, act in chain:
        x = layer(x, activation=act)
    return x


def run_linear_chain(x, chain):
    """``chain`` is ``[(Linear, activation or None), ...]``; the output of the last."""
    if not isinstance(x, Tensor) or x.data.ndim != 2:
        return _one_by_one(x, chain)
    xa = x.data
    device = _device(xa)
    width = xa.shape[1]
    layers, params = [], []
    track = x.requires_grad
    for layer, act in chain:
        p = layer._parameters
        w, b = p.get("weight"), p.get("bias")
        if w is None:
            return _one_by_one(x, chain)
        wa = w.data
        if wa.ndim != 2 or wa.shape[1] != width or _device(wa) != device:
            return _one_by_one(x, chain)
        ba = None
        if b is not None:
            ba = b.data
            if ba.shape != (wa.shape[0],) or _device(ba) != device:
                return _one_by_one(x, chain)
            track = track or b.requires_grad
        track = track or w.requires_grad
        width = wa.shape[0]
        layers.append((wa, ba, act))
        params += (w, b)
    if track and grad_mode._grad_enabled:
        present = [q for q in params if q is not None]
        if len({id(q) for q in present}) != len(present):  # shared weights: keep per-layer accumulation order
            return _one_by_one(x, chain)
        return LinearChain.apply(x, *params, activations=tuple(act for _, act in chain))
    return Tensor._make(linear_chain_infer(xa, layers))
