"""Helpers of the conv+BatchNorm fold tests: moved BatchNorm statistics, float64 modules."""
import numpy as np
import pytest

from minitl import nn
from minitl.nn import conv_bn_fold


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


@pytest.fixture(autouse=True)
def fold_at_any_size(monkeypatch, request):
    """The fold tests check what folding computes, on the small batches a test can
    afford: there the cost rule (fold only where it saves work) would run most pairs
    unfolded, so it is lifted, except for the tests of the rule itself."""
    if "cost_rule" not in request.keywords:
        monkeypatch.setattr(conv_bn_fold, "_fold_pays", lambda conv, x: True)
