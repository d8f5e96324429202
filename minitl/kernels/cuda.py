"""The CUDA kernels (``minitl._C_cuda``), exposed with the reference signatures.

Each function takes CuPy arrays, makes them contiguous, checks dtypes and
shapes (``ValueError`` naming them) and, with the arrays' device current,
allocates its outputs with CuPy (so CuPy's memory pool owns all device
memory) and launches the kernel on that device's current stream with raw
device pointers. A failed launch raises
``RuntimeError("minitl._C_cuda.<kernel>: <CUDA error>")``.

This module is the face the dispatch reads ops from, by name; the wrappers
live by op group in :mod:`.cuda_linear` (linear, cross-entropy),
:mod:`.cuda_conv` (conv2d, conv2d_pool, pooling), :mod:`.cuda_norm`
(BatchNorm) and :mod:`.cuda_optim` (SGD, Adam), over the shared runtime of
:mod:`.cuda_base` (the extension ``_C``, its probe, the test hooks).

``AVAILABLE`` is True when the extension imported *and* runs on the current
GPU; ``STATUS`` says so, or why not, in one line. When unavailable, the
dispatch in :mod:`minitl.kernels` falls back to CuPy's reference path.
"""
from __future__ import annotations

from .cuda_base import _C, AVAILABLE, NAME, STATUS  # noqa: F401  (_C: for users' debugging calls)
from .cuda_conv import (avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward,
                        conv2d_pool_backward, conv2d_pool_forward, max_pool2d_backward,
                        max_pool2d_forward)
from .cuda_linear import (cross_entropy_backward, cross_entropy_forward, linear_backward,
                          linear_forward)
from .cuda_norm import batch_norm_backward, batch_norm_forward
from .cuda_optim import adam_step, sgd_step

FUSED_OPS = ("conv2d_pool_forward", "conv2d_pool_backward")  # see fused_reference.py

__all__ = [
    "AVAILABLE", "STATUS", "NAME", "FUSED_OPS",
    "linear_forward", "linear_backward", "conv2d_forward", "conv2d_backward",
    "conv2d_pool_forward", "conv2d_pool_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "cross_entropy_forward", "cross_entropy_backward",
    "batch_norm_forward", "batch_norm_backward", "sgd_step", "adam_step",
]
