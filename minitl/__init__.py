"""minitl: a small deep-learning engine for studying transfer learning end to end.

The face of the package: the tensor API (``Tensor``, ``tensor``, ``no_grad``,
``manual_seed``, ...) and every layer below as an attribute, as in PyTorch
(``minitl.optim.SGD``, ``minitl.nn.Linear``). The layers, bottom up:
``core``, ``kernels``, ``ops``, ``nn`` and ``io``, ``optim``/``models``/``data``,
``train``, ``transfer``, ``experiments``; see ``docs/architecture.md``.
"""
import builtins as _builtins

import numpy as np

from . import core, kernels, ops  # ops binds Tensor's operators
from . import io, nn  # noqa: I001  (the order is the layer order)
from . import data, models, optim
from . import train
from . import transfer
from . import experiments
from . import cuda
from .core.version import __version__
from .core.grad_mode import enable_grad, is_grad_enabled, no_grad
from .core.random import manual_seed
from .core.tensor import Tensor, tensor
from .kernels import cpu as _cpu_kernels
from .core import creation
from .core.creation import (arange, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, rand,
                            rand_like, randint, randn, randn_like, zeros, zeros_like)
from .ops import math_functions as M
from .ops import reduce_functions as R
from .ops import shape_functions as S
from .ops.math_functions import (abs, acos, add, allclose, asin, atan, ceil, clamp, clamp_max, clamp_min, cos,
                                 cosh, div, equal, erf, exp, exp2, expm1, floor, isclose, isfinite, isinf, isnan,
                                 lerp, log, log1p, log2, log10, logical_and, logical_not, logical_or, logical_xor,
                                 matmul, maximum, minimum, mul, neg, nonzero, pow, reciprocal, relu, round, rsqrt,
                                 sigmoid, sign, sin, sinh, sqrt, square, sub, tan, tanh, trunc)
from .ops.reduce_functions import (all, amax, amin, any, argmax, argmin, argsort, cumprod, cumsum, logsumexp, max,
                                   mean, min, norm, prod, sort, std, sum, topk, var)
from .ops.shape_functions import (cat, chunk, clone, expand, flip, gather, index_select, masked_fill, movedim,
                                  narrow, repeat, roll, scatter, scatter_add, split, squeeze, stack, tril, triu,
                                  unbind, unflatten, unsqueeze, where)

clip = clamp
concat = concatenate = cat


def set_num_threads(n: int) -> None:
    """Threads used by the C++ kernels (OpenMP); ``OMP_NUM_THREADS`` sets the default."""
    _cpu_kernels.set_num_threads(_builtins.int(n))


def get_num_threads() -> int:
    """Threads the C++ kernels use."""
    return _cpu_kernels.get_num_threads()


def save(obj, path, metadata: dict | None = None) -> None:
    """Write a state dict (or a Module's) to ``path``: ``.safetensors`` or ``.npz`` by suffix (never pickle)."""
    io.save(obj, path, metadata)


def load(path, map_location=None) -> dict:
    """A state dict saved by :func:`save`, as ``{name: Tensor}`` (on ``map_location``, the CPU by default)."""
    device = "cpu" if map_location is None else map_location
    return {k: Tensor(v, device=device) for k, v in io.load(path).items()}


# dtypes, as torch.float32 ...
float16, float32, float64 = np.float16, np.float32, np.float64
half, float, double = np.float16, np.float32, np.float64
int8, int16, int32, int64, uint8 = np.int8, np.int16, np.int32, np.int64, np.uint8
int, long = np.int32, np.int64
bool = np.bool_

_TORCH_FUNCTIONS = creation.__name__, S.__name__, M.__name__, R.__name__

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed",
    "core", "kernels", "ops", "nn", "io", "optim", "models", "data", "train", "transfer", "experiments", "cuda",
    "set_num_threads", "get_num_threads", "save", "load",
]
# the torch.* functions: creation (core/creation.py) and ops/{shape,math,reduce}_functions.py
__all__ += [n for n, v in list(globals().items()) if not n.startswith("_") and getattr(v, "__module__", None) in _TORCH_FUNCTIONS]
