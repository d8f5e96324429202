"""The engine's core: ``Tensor``, the graph and backward, grad mode, backend (``xp``, devices),
random state and gradient checks. Imports nothing above itself."""
from . import backend, random
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, tensor

__all__ = ["Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "backend", "random"]
