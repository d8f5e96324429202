"""Activation modules with PyTorch's names and constructor arguments; each calls its function
in :mod:`minitl.nn.activation_functions` (or ``functional``) and holds no parameters."""
from __future__ import annotations

from . import activation_functions as A
from . import functional as F
from .args import bind
from .module import Module


class _Activation(Module):
    """An activation: ``forward(x) = fn(x, **self.kwargs)``."""

    fn = None

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return type(self).fn(x, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


def _activation(name, fn, doc, **defaults):
    """A module class whose constructor takes ``defaults``' names (``inplace`` accepted and ignored)."""

    def __init__(self, *args, inplace: bool = False, **kwargs):
        _Activation.__init__(self, **bind(name, defaults, args, kwargs))

    return type(name, (_Activation,), {"fn": staticmethod(fn), "__init__": __init__, "__doc__": doc})


LeakyReLU = _activation("LeakyReLU", A.leaky_relu, "x if x > 0 else negative_slope * x.", negative_slope=0.01)
ELU = _activation("ELU", A.elu, "x if x > 0 else alpha * (exp(x) - 1).", alpha=1.0)
CELU = _activation("CELU", A.celu, "x if x > 0 else alpha * (exp(x / alpha) - 1).", alpha=1.0)
SELU = _activation("SELU", A.selu, "The self-normalising ELU.")
GELU = _activation("GELU", A.gelu, "x * Phi(x); approximate='tanh' for the tanh form.", approximate="none")
SiLU = _activation("SiLU", A.silu, "x * sigmoid(x).")
Mish = _activation("Mish", A.mish, "x * tanh(softplus(x)).")
Softplus = _activation("Softplus", A.softplus, "log(1 + exp(beta x)) / beta.", beta=1.0, threshold=20.0)
Softsign = _activation("Softsign", A.softsign, "x / (1 + |x|).")
Hardtanh = _activation("Hardtanh", A.hardtanh, "clamp(x, min_val, max_val).", min_val=-1.0, max_val=1.0)
ReLU6 = _activation("ReLU6", A.relu6, "clamp(x, 0, 6).")
Hardsigmoid = _activation("Hardsigmoid", A.hardsigmoid, "clamp(x / 6 + 1/2, 0, 1).")
Hardswish = _activation("Hardswish", A.hardswish, "x * hardsigmoid(x).")
LogSigmoid = _activation("LogSigmoid", A.logsigmoid, "log(sigmoid(x)).")
Softmax = _activation("Softmax", F.softmax, "softmax along dim.", dim=None)
LogSoftmax = _activation("LogSoftmax", F.log_softmax, "log_softmax along dim.", dim=None)

__all__ = ["LeakyReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish", "Softplus", "Softsign", "Hardtanh", "ReLU6",
           "Hardsigmoid", "Hardswish", "LogSigmoid", "Softmax", "LogSoftmax"]
