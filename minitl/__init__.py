"""minitl: a small deep-learning engine for studying transfer learning end to end."""
__version__ = "0.1.0"

from . import cuda, kernels
from .function import enable_grad, is_grad_enabled, no_grad
from .random import manual_seed
from .tensor import Tensor, tensor


def set_num_threads(n: int) -> None:
    """Threads used by the C++ kernels (OpenMP); ``OMP_NUM_THREADS`` sets the default."""
    from .kernels import native

    native.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the C++ kernels use."""
    from .kernels import native

    return native.get_num_threads()


def zeros(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """A tensor of zeros."""
    import numpy as np

    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad, device=device)


def ones(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ones."""
    import numpy as np

    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad, device=device)


def randn(*shape, dtype="float32", device="cpu", requires_grad=False) -> Tensor:
    """Standard-normal samples from minitl's generator."""
    from .random import generator

    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = generator().standard_normal(shape).astype(dtype)
    return Tensor(data, requires_grad=requires_grad, device=device)


__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed",
    "cuda", "kernels", "set_num_threads", "get_num_threads", "zeros", "ones", "randn",
]
