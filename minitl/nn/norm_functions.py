"""Normalisation functions with PyTorch's signatures: ``batch_norm``,
``layer_norm``, ``group_norm``; re-exported by ``nn.functional``."""
from __future__ import annotations

import math

from ..core.tensor import Tensor
from ..ops.norm import BatchNorm, Normalize


def _data(t):
    return None if t is None else t.data


def batch_norm(input: Tensor, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, layer: str = "batch_norm"):
    """BatchNorm over the channel axis 1 of (N, C, *spatial).

    ``training=True`` normalises with the batch statistics and updates the
    running buffers in place: ``r <- (1 - momentum) r + momentum * stat`` with
    the unbiased batch variance. Otherwise it uses the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"{layer} expects input (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{layer}: {name} must have shape ({c},) for input {input.shape}, got {tuple(t.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{layer}: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError(f"{layer}: evaluation needs running statistics (or training=True)")
    if training and input.numel() // max(c, 1) < 2:
        raise ValueError(f"{layer}: expected more than 1 value per channel when training, got input {input.shape}")
    return BatchNorm.apply(input, weight, bias, running_mean=_data(running_mean), running_var=_data(running_var),
                           training=bool(training), factor=float(momentum), eps=float(eps))


def _affine(y, weight, bias):
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dimensions, then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != shape or input.ndim < k:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in normalized_shape {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {tuple(t.shape)}")
    y = Normalize.apply(input, axes=tuple(range(input.ndim - k, input.ndim)), eps=float(eps))
    return _affine(y, weight, bias)


def group_norm(input: Tensor, num_groups: int, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Normalise (N, C, *) over each group of C/num_groups channels (and all
    spatial positions) per sample, then scale and shift per channel."""
    if input.ndim < 2:
        raise ValueError(f"group_norm expects input (N, C, *), got shape {input.shape}")
    n, c = input.shape[:2]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups!r} must be a positive divisor of the "
                         f"{c} channels")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"group_norm: {name} must have shape ({c},), got {tuple(t.shape)}")
    spatial = math.prod(input.shape[2:])
    y = Normalize.apply(input.reshape(n, num_groups, (c // num_groups) * spatial), axes=(2,), eps=float(eps))
    y = y.reshape(*input.shape)
    bshape = (1, c) + (1,) * (input.ndim - 2)
    return _affine(y, None if weight is None else weight.reshape(*bshape),
                   None if bias is None else bias.reshape(*bshape))
