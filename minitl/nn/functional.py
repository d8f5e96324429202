"""Functions with PyTorch's argument names and weight layouts.

Each checks its arguments (a wrong shape is a ``ValueError`` naming both
shapes, never a crash inside NumPy), normalises the geometry, and hands the
raw work to :mod:`minitl.ops.fused`, which calls the kernel dispatch point.
"""
from __future__ import annotations

import numpy as np

from ..core import random as _random
from ..core.backend import is_cupy_array, xp_for
from ..ops import fused
from ..ops.fused import ACTIVATIONS, conv_output_size
from ..ops.elementwise import Relu, Sigmoid, Tanh
from ..core.tensor import Tensor
from .args import pair, where as _where  # noqa: F401  (pair is part of F's API)
from .loss_functions import reduce as _reduce
from .window_functions import avg_pool2d_general, conv2d_general, max_pool2d_general


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation=None, layer: str = ""):
    """act(x @ weight.T + bias); weight is (out_features, in_features)."""
    _check_activation(activation)
    if weight.ndim != 2:
        raise ValueError(f"{_where(layer)}linear weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{_where(layer)}linear expects inputs with {weight.shape[1]} features (weight {weight.shape}), "
            f"got input of shape {x.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{_where(layer)}linear bias must have shape {(weight.shape[0],)}, got {bias.shape}")
    lead = x.shape[:-1]
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    y = fused.Linear.apply(x2, weight, bias, activation=activation)
    return y if x.ndim == 2 else y.reshape(*lead, weight.shape[0])


def _check_conv(x, weight, bias, stride, padding, activation, layer):
    """Validate conv arguments; returns (stride, padding, (OH, OW)) normalised."""
    _check_activation(activation)
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"{_where(layer)}conv2d expects input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{_where(layer)}conv2d weight must be (O, C, kh, kw), got shape {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{_where(layer)}conv2d expects {weight.shape[1]} input channels (weight {weight.shape}), "
            f"got input of shape {x.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{_where(layer)}conv2d bias must have shape {(weight.shape[0],)}, got {bias.shape}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{_where(layer)}conv2d needs stride >= 1 and padding >= 0, got {stride}, {padding}")
    kh, kw = weight.shape[2:]
    out = (conv_output_size(x.shape[2], kh, stride[0], padding[0]),
           conv_output_size(x.shape[3], kw, stride[1], padding[1]))
    if min(out) < 1:
        raise ValueError(
            f"{_where(layer)}conv2d kernel {(kh, kw)} with padding {padding} does not fit input of shape {x.shape}"
        )
    return stride, padding, out


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1,
           activation=None, layer: str = ""):
    """2-D convolution (cross-correlation); x (N, C, H, W), weight (O, C/groups, kh, kw).

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'``. groups=1,
    dilation=1 and int/pair padding take the fused kernels; every other
    geometry runs on the general reference path (window_functions.py).
    """
    if groups != 1 or pair(dilation, "dilation") != (1, 1) or isinstance(padding, str):
        _check_activation(activation)
        y = conv2d_general(x, weight, bias, stride, padding, dilation, groups, layer=layer)
        return y if activation is None else _ACTIVATION_FNS[activation](y)
    stride, padding, _ = _check_conv(x, weight, bias, stride, padding, activation, layer)
    return fused.Conv2d.apply(x, weight, bias, stride=stride, padding=padding, activation=activation)


def conv2d_pool(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, activation=None,
                pool=2, layer: str = ""):
    """act(max_pool2d(conv2d(x, weight) + bias, pool)) over non-overlapping windows, as one op.

    Equal in value to ``max_pool2d(act(conv2d(...)), pool)`` for the monotone
    activations; the compiled kernels never materialise the full conv output.
    """
    stride, padding, out = _check_conv(x, weight, bias, stride, padding, activation, layer)
    pool = pair(pool, "pool")
    if min(pool) < 1 or out[0] < pool[0] or out[1] < pool[1]:
        raise ValueError(f"{_where(layer)}pool window {pool} does not fit the conv output {out}")
    return fused.Conv2dPool.apply(x, weight, bias, stride=stride, padding=padding, activation=activation, pool=pool)


def _pool_args(x, kernel_size, stride, name):
    kernel_size = pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else pair(stride, "stride")
    if x.ndim != 4:
        raise ValueError(f"{name} expects input (N, C, H, W), got shape {x.shape}")
    if min(kernel_size) < 1 or min(stride) < 1:
        raise ValueError(f"{name} needs kernel_size and stride >= 1, got {kernel_size}, {stride}")
    if kernel_size[0] > x.shape[2] or kernel_size[1] > x.shape[3]:
        raise ValueError(f"{name} window {kernel_size} is larger than the input of shape {x.shape}")
    return kernel_size, stride


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over windows (stride defaults to kernel_size); padding counts as -inf.

    Without padding, dilation or ceil_mode the fused kernels serve it; otherwise
    the general reference path (window_functions.py)."""
    if padding != 0 or dilation != 1 or ceil_mode:
        return max_pool2d_general(x, kernel_size, stride, padding, dilation, ceil_mode)
    kernel_size, stride = _pool_args(x, kernel_size, stride, "max_pool2d")
    return fused.MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over windows (stride defaults to kernel_size); zero padding, counted in
    the divisor when ``count_include_pad`` (PyTorch's rules)."""
    if padding != 0 or ceil_mode:
        return avg_pool2d_general(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
    kernel_size, stride = _pool_args(x, kernel_size, stride, "avg_pool2d")
    return fused.AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride)


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return Relu.apply(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow."""
    return Sigmoid.apply(x)


def _softmax_dim(x, dim, axis, name):
    if dim is not None and axis is not None:
        raise TypeError(f"{name}: pass dim= or axis=, not both")
    d = dim if dim is not None else (axis if axis is not None else -1)
    n = max(x.ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"{name}: dim {d} is out of range for a tensor of shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {x.dtype}")
    return d % n if x.ndim else None


_ACTIVATION_FNS = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def softmax(x: Tensor, dim: int | None = None, axis: int | None = None) -> Tensor:
    """exp(x) normalised along ``dim`` (PyTorch) or ``axis``; the last dim by default."""
    return fused.Softmax.apply(x, axis=_softmax_dim(x, dim, axis, "softmax"))


def log_softmax(x: Tensor, dim: int | None = None, axis: int | None = None) -> Tensor:
    """log(softmax(x)) along ``dim`` (or ``axis``), computed stably."""
    return fused.LogSoftmax.apply(x, axis=_softmax_dim(x, dim, axis, "log_softmax"))


def _targets(logits: Tensor, target, name: str, check_device: bool = True):
    """Class-index targets as an int64 array on the logits' device, range-checked.

    Host targets are checked on the host before the upload (no device sync);
    targets already on the GPU only if ``check_device`` (two blocking syncs).
    """
    t = target.data if isinstance(target, Tensor) else target
    host = None if is_cupy_array(t) else np.asarray(t)
    t = xp_for(logits.device).asarray(t if host is None else host)
    if logits.ndim != 2:
        raise ValueError(f"{name} expects logits of shape (N, C), got {logits.shape}")
    if t.ndim != 1 or t.shape[0] != logits.shape[0]:
        raise ValueError(f"{name}: target must have shape ({logits.shape[0]},) for logits {logits.shape}, got {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name}: target must hold integer class indices, got dtype {t.dtype}")
    checked = host if host is not None else (t if check_device else None)
    if checked is not None and checked.size:
        lo, hi = int(checked.min()), int(checked.max())
        if lo < 0 or hi >= logits.shape[1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}: class index {bad} is out of range for {logits.shape[1]} classes")
    return t.astype(np.int64, copy=False)


def cross_entropy(logits: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy, with PyTorch's arguments.

    (N, C) logits with class indices and no ``weight`` take the fused kernel;
    class weights, ignored targets, probability targets and (N, C, d1, ...)
    inputs take the composition in ``loss_functions.cross_entropy_general``.
    """
    if size_average is not None or reduce is not None:
        raise TypeError("cross_entropy: size_average= and reduce= are deprecated in PyTorch; use reduction=")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    t = target.data if isinstance(target, Tensor) else target
    plain = (weight is None and logits.ndim == 2 and getattr(t, "dtype", np.dtype(np.int64)).kind in "iu"
             and not (isinstance(t, list) and any(isinstance(v, float) for v in t)))
    if plain and (ignore_index != -100 or not is_cupy_array(t)):
        # Looking for ignored targets reads them; on the GPU that is a blocking sync,
        # so it is done there only for a non-default ignore_index (a -100 target on
        # the GPU is out of range: the kernel's loss is NaN).
        ta = xp_for(logits.device).asarray(t)
        plain = ta.dtype.kind in "iu" and not bool((ta == ignore_index).any())
    if not plain:
        from .loss_functions import cross_entropy_general

        return cross_entropy_general(logits, target, weight, ignore_index, reduction, float(label_smoothing))
    # The CUDA kernel writes a NaN loss for an out-of-range target, so targets
    # on the GPU skip the range check there (two blocking syncs per step).
    # CuPy's reference path would wrap such an index silently: it keeps it.
    from .. import kernels

    check_device = logits.device != "cuda" or kernels.active("cuda")["cross_entropy_forward"] != "cuda"
    t = _targets(logits, target, "cross_entropy", check_device)
    return _reduce(fused.CrossEntropy.apply(logits, t, label_smoothing=float(label_smoothing)), reduction,
                   "cross_entropy")


def nll_loss(log_probs: Tensor, target, reduction: str = "mean"):
    """Negative log-likelihood of (N, C) log-probabilities at the target classes."""
    t = _targets(log_probs, target, "nll_loss")
    picked = log_probs[xp_for(log_probs.device).arange(log_probs.shape[0]), t]
    return _reduce(-picked, reduction, "nll_loss")


def mse_loss(input: Tensor, target, reduction: str = "mean"):
    """Mean squared error."""
    if not isinstance(target, Tensor):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def dropout(x: Tensor, p: float = 0.5, training: bool = True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = _random.generator().random(x.shape) >= p
    mask = xp_for(x.device).asarray(keep.astype(x.dtype) / (1.0 - p))
    return x * Tensor._make(mask)


from .functional_everyday import *  # noqa: E402,F401,F403  (activations, losses, pad, one_hot)
from .norm_functions import batch_norm, group_norm, layer_norm  # noqa: E402,F401
from .window_functions import adaptive_avg_pool2d, adaptive_max_pool2d, interpolate  # noqa: E402,F401
