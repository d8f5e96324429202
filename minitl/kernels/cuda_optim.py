"""CUDA optimizer steps: SGD and Adam(W) updating lists of arrays in place, one
launch per dtype (see :mod:`minitl.kernels.cuda`).
"""
from __future__ import annotations

from . import cuda_base as base
from . import reference
from .cuda_base import F32, F64, in_place_ok, on_device, ptr, shape_error, stream


# ---------------------------------------------------------------- optimizers
def _groups(name, params, grads, states, momentum=True):
    """Split tensors by dtype; what a kernel cannot update in place goes to ``rest``."""
    groups, rest = {}, []
    for i, p in enumerate(params):
        g = grads[i]
        if g.shape != p.shape:
            raise shape_error(name, param=p, grad=g)
        st = [s[i] for s in states] if momentum else []
        if in_place_ok(p, *st) and g.dtype == p.dtype:
            groups.setdefault(p.dtype, []).append(i)
        else:
            rest.append(i)
    return groups, rest


@on_device
def sgd_step(params, grads, bufs, lr, momentum, dampening, nesterov, weight_decay, first):
    """In-place SGD over lists of arrays (PyTorch's rule), one launch per dtype."""
    params, grads = list(params), list(grads)
    bufs = list(bufs) if bufs is not None else [None] * len(params)
    groups, rest = _groups("sgd_step", params, grads, [bufs], momentum=bool(momentum))
    for dtype, idx in groups.items():
        gs = [base._cp.ascontiguousarray(grads[i]) for i in idx]
        bs = [ptr(bufs[i]) if momentum else 0 for i in idx]
        base._C.sgd_step([ptr(params[i]) for i in idx], [ptr(g) for g in gs], bs,
                    [int(params[i].size) for i in idx], float(lr), float(momentum),
                    float(dampening), bool(nesterov), float(weight_decay), bool(first),
                    F32 if dtype == base._cp.float32 else F64, stream(), params[idx[0]].device.id)
    if rest:
        reference.sgd_step([params[i] for i in rest], [grads[i] for i in rest],
                           [bufs[i] for i in rest], lr, momentum, dampening, nesterov,
                           weight_decay, first)


@on_device
def adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
              weight_decay, decoupled):
    """In-place Adam / AdamW over lists of arrays, one launch per dtype."""
    params, grads = list(params), list(grads)
    exp_avgs, exp_avg_sqs = list(exp_avgs), list(exp_avg_sqs)
    groups, rest = _groups("adam_step", params, grads, [exp_avgs, exp_avg_sqs])
    for dtype, idx in groups.items():
        gs = [base._cp.ascontiguousarray(grads[i]) for i in idx]
        base._C.adam_step([ptr(params[i]) for i in idx], [ptr(g) for g in gs],
                     [ptr(exp_avgs[i]) for i in idx], [ptr(exp_avg_sqs[i]) for i in idx],
                     [int(params[i].size) for i in idx], int(step), float(lr), float(beta1),
                     float(beta2), float(eps), float(weight_decay), bool(decoupled),
                     F32 if dtype == base._cp.float32 else F64, stream(), params[idx[0]].device.id)
    if rest:
        reference.adam_step([params[i] for i in rest], [grads[i] for i in rest],
                            [exp_avgs[i] for i in rest], [exp_avg_sqs[i] for i in rest], step,
                            lr, beta1, beta2, eps, weight_decay, decoupled)
