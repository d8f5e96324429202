"""minitl: a small deep-learning engine for studying transfer learning end to end.

The face of the package: the tensor API (``Tensor``, ``tensor``, ``no_grad``,
``manual_seed``, ...) and every layer below as an attribute, as in PyTorch
(``minitl.optim.SGD``, ``minitl.nn.Linear``). The layers, bottom up:
``core``, ``kernels``, ``ops``, ``nn`` and ``io``, ``optim``/``models``/``data``,
``train``, ``transfer``, ``experiments``; see ``docs/architecture.md``.
"""
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


def set_num_threads(n: int) -> None:
    """Threads used by the C++ kernels (OpenMP); ``OMP_NUM_THREADS`` sets the default."""
    _cpu_kernels.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the C++ kernels use."""
    return _cpu_kernels.get_num_threads()


def _shape(shape) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """A tensor of zeros."""
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, device=device)


def ones(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ones."""
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, device=device)


def randn(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """Standard-normal samples from minitl's generator."""
    data = core.random.generator().standard_normal(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad, device=device)


__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed",
    "core", "kernels", "ops", "nn", "io", "optim", "models", "data", "train", "transfer", "experiments", "cuda",
    "set_num_threads", "get_num_threads", "zeros", "ones", "randn",
]
