"""Activation functions with PyTorch's names and arguments (re-exported by ``nn.functional``).

Each is one ``Function`` of :mod:`minitl.ops.activations` (forward beside
backward there); integer inputs are refused, as PyTorch does.
"""
from __future__ import annotations

from ..core.tensor import Tensor
from ..ops import activations as A


def _float(x, name) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {x.dtype}")
    return x


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return A.LeakyRelu.apply(_float(input, "leaky_relu"), slope=float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return A.Elu.apply(_float(input, "elu"), alpha=float(alpha))


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x / alpha) - 1) otherwise."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return A.Elu.apply(_float(input, "celu"), alpha=float(alpha), beta=float(alpha))


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants."""
    return A.Elu.apply(_float(input, "selu"), alpha=A.SELU_ALPHA, scale=A.SELU_SCALE)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (the Gaussian CDF, exact through erf), or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return A.Gelu.apply(_float(input, "gelu"), approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish)."""
    return A.Silu.apply(_float(input, "silu"))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return A.Mish.apply(_float(input, "mish"))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold; never overflows."""
    if beta == 0:
        raise ValueError("softplus: beta must not be 0")
    return A.Softplus.apply(_float(input, "softplus"), beta=float(beta), threshold=float(threshold))


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return A.Softsign.apply(_float(input, "softsign"))


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    return A.Hardtanh.apply(_float(input, "hardtanh"), lo=float(min_val), hi=float(max_val))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """clamp(x, 0, 6)."""
    return A.Hardtanh.apply(_float(input, "relu6"), lo=0.0, hi=6.0)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """clamp(x / 6 + 1/2, 0, 1)."""
    return A.Hardsigmoid.apply(_float(input, "hardsigmoid"))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * hardsigmoid(x)."""
    return A.Hardswish.apply(_float(input, "hardswish"))


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), computed stably."""
    return A.LogSigmoid.apply(_float(input, "logsigmoid"))


__all__ = ["leaky_relu", "elu", "celu", "selu", "gelu", "silu", "mish", "softplus", "softsign", "hardtanh", "relu6", "hardsigmoid", "hardswish", "logsigmoid"]
