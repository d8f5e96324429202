"""Helpers of the conv+BatchNorm fold tests: moved BatchNorm statistics, float64 modules."""
import numpy as np

from minitl import nn


def cast_floats(module, dtype):
    """Every floating parameter and buffer of ``module`` in ``dtype`` (in place); returns it."""
    for t in list(module.parameters()) + [b for _, b in module.named_buffers()]:
        if t.data.dtype.kind == "f":
            t.data = t.data.astype(dtype)
    return module


def move_bn_stats(module, rng):
    """Random running statistics (and affine parameters) in every BatchNorm2d of
    ``module``, far from their identity defaults; returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0.0, 0.7, c)
            m.running_var.data[...] = rng.uniform(0.3, 2.5, c)
            if m.affine:
                m.weight.data[...] = rng.normal(1.0, 0.4, c)
                m.bias.data[...] = rng.normal(0.0, 0.4, c)
    return module
