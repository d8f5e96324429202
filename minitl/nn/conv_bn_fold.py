"""Conv2d followed by an eval-mode BatchNorm2d (and an activation) as one conv call.

In eval mode BatchNorm is a per-channel affine map, ``y = (z - mean) * s + beta``
with ``s = gamma / sqrt(var + eps)``, so conv -> BN equals one conv with

    w'[o] = w[o] * s[o],    b'[o] = (b[o] - mean[o]) * s[o] + beta[o]

whatever the conv's stride, padding, dilation or groups (only output channels
are rescaled), and a following activation (and a tiling max-pool) goes into
the conv kernel's fused epilogue. :func:`conv_bn_act` folds only when that is
exact and safe: the BatchNorm normalises with its running statistics, and no
gradient is wanted (grad mode off, or nothing involved requires one: inference,
and a frozen backbone whose features are cached). Otherwise it runs conv -> BN
-> activation exactly as the layers do, so training is bit-identical.

The folded weights are recomputed on every call (O * C/groups * kh * kw
multiplies, a small fraction of the conv itself), so they can never be stale
after an optimizer step, ``load_state_dict`` or a change of the running
statistics; nothing is written to the modules' parameters or buffers. Where
that recomputation costs more than it saves (a small batch through a wide
layer: one image through ResNet-18's last stage touches 4608 weights per
output channel and only 49 output positions), the layers run unfolded: the
fold saves about two passes over the output (the BatchNorm and the activation)
and costs one pass over the weights, so it runs when
``C/groups * kh * kw <= 2 * N * OH * OW``.

Folded outputs differ from the unfolded ones by float rounding only;
``MINITL_FOLD_BN=0`` (or :func:`set_folding`) turns the fold off, to reproduce
the unfolded eval outputs bit for bit or to measure what the fold gains.
"""
from __future__ import annotations

import os

import numpy as np

from ..core.backend import get_array_module
from ..core.grad_mode import is_grad_enabled
from ..core.tensor import Tensor
from . import functional as F
from .conv import Conv2d
from .norm import BatchNorm2d, _BatchNorm


_folding = os.environ.get("MINITL_FOLD_BN", "1") != "0"


def set_folding(enabled: bool) -> bool:
    """Turn the fold on or off for the whole process; returns the previous setting."""
    global _folding
    previous, _folding = _folding, bool(enabled)
    return previous


def _own_forward(module, cls) -> bool:
    """True when ``module`` runs ``cls.forward`` itself: neither a subclass overriding it
    nor a hook set on the instance (as transfer.cka records outputs), both of which a
    fold would bypass."""
    return type(module).forward is cls.forward and "forward" not in module.__dict__


def _needs_grad(conv, bn, x) -> bool:
    if not is_grad_enabled():
        return False
    return bool(getattr(x, "requires_grad", False)) or any(
        p.requires_grad for m in (conv, bn) for p in m.parameters())


def why_not_folded(conv, bn, x) -> str | None:
    """Why ``conv_bn_act(conv, bn, x)`` runs conv -> BN unfolded, or None when it folds."""
    if not _folding:
        return "folding is turned off (MINITL_FOLD_BN=0 or set_folding(False))"
    if not (isinstance(conv, Conv2d) and _own_forward(conv, Conv2d)):
        return "the conv is not a plain Conv2d (a subclass or a hooked forward)"
    if not (isinstance(bn, BatchNorm2d) and _own_forward(bn, _BatchNorm)):
        return "the norm is not a plain BatchNorm2d (a subclass or a hooked forward)"
    if bn.training:
        return "the BatchNorm is in training mode (batch statistics, running statistics updated)"
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return "the BatchNorm has no running statistics (it normalises with each batch's, in eval too)"
    if bn.num_features != conv.out_channels:
        return f"BatchNorm2d({bn.num_features}) does not match the conv's {conv.out_channels} output channels"
    devices = {t.device for t in (conv.weight, bn.running_mean, bn.running_var)}
    if len(devices) != 1:
        return f"the conv and the BatchNorm are on different devices ({', '.join(sorted(devices))})"
    if _needs_grad(conv, bn, x):
        return "a gradient is needed (grad mode on and the input or a parameter requires one)"
    if not _fold_pays(conv, x):
        return ("folding would cost more than it saves (fan-in C/groups*kh*kw above twice the "
                "output positions N*OH*OW: a small batch through a wide layer)")
    return None


def _fold_pays(conv, x) -> bool:
    """Whether refolding the weights (one pass over them) costs less than the two
    passes over the output (BatchNorm, activation) it replaces."""
    shape = getattr(x, "shape", ())
    if len(shape) != 4:
        return True  # the conv raises its own shape error
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    positions = shape[0] * max(1, shape[2] // sh) * max(1, shape[3] // sw)
    fan_in = conv.in_channels // conv.groups * kh * kw
    return fan_in <= 2 * positions


def fold_conv_bn(conv, bn):
    """``(weight, bias)`` arrays of the one conv equal to ``conv`` then eval-mode ``bn``.

    The scale and the bias are formed in float64, the result is in the conv weight's dtype;
    ``affine=False`` counts as gamma = 1, beta = 0, and a bias-free conv as b = 0.
    """
    w = conv.weight.data
    xp = get_array_module(w)
    scale = bn.running_var.data.astype(np.float64)  # a copy: the buffers are never written
    scale += bn.eps
    scale = 1.0 / xp.sqrt(scale)
    if bn.weight is not None:
        scale *= bn.weight.data
    shift = -bn.running_mean.data.astype(np.float64)
    if conv.bias is not None:
        shift += conv.bias.data
    shift *= scale
    if bn.bias is not None:
        shift += bn.bias.data
    # The product in the weight's own dtype (the scale rounded to it first): a rounding
    # more than a float64 product would take, at a fraction of the cost of converting
    # every weight to float64 and back on each call.
    weight = w * scale.astype(w.dtype).reshape(-1, 1, 1, 1)
    return weight, shift.astype(w.dtype, copy=False)


def conv_bn_act(conv, bn, x: Tensor, activation=None, pool=None) -> Tensor:
    """``act(bn(conv(x)))``, then a non-overlapping max-``pool`` when given, folded into
    one conv kernel call when :func:`why_not_folded` finds nothing against it.

    ``activation`` is None, ``'relu'``, ``'tanh'`` or ``'sigmoid'``; ``pool`` a max-pool
    window whose stride is the window (as Sequential fuses). Unfolded, the layers
    run one by one, exactly as calling them would.
    """
    if activation not in F.ACTIVATIONS:
        raise ValueError(f"conv_bn_act: activation must be one of {F.ACTIVATIONS}, got {activation!r}")
    if why_not_folded(conv, bn, x) is not None:
        y = bn(conv(x))
        if activation is not None:
            y = F._ACTIVATION_FNS[activation](y)
        return y if pool is None else F.max_pool2d(y, pool)
    w, b = fold_conv_bn(conv, bn)
    weight, bias = Tensor(w), Tensor(b)
    label = f"{conv._label()} folded with BatchNorm2d({bn.num_features})"
    if pool is not None and conv.fusable:
        return F.conv2d_pool(x, weight, bias, conv.stride, conv.padding, activation=activation, pool=pool,
                             layer=label)
    y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups, activation=activation,
                 layer=label)
    return y if pool is None else F.max_pool2d(y, pool)
