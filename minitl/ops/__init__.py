"""Differentiable ops, each a ``Function`` with ``forward`` beside ``backward``.

Importing this package binds ``Tensor``'s operators and methods
(:func:`minitl.ops.tensor_methods.install`); ``minitl/core/tensor.py`` lists
them with the op each comes from.
"""
from ..core.tensor import Tensor
from . import tensor_methods
from .arithmetic import Add, Div, MatMul, Mul, Neg, Pow, Sub
from .elementwise import Clip, Exp, Log, Relu, Sigmoid, Sqrt, Tanh
from .reduce import Max, Mean, Sum
from .indexing import GetItem
from .shape import AsType, Reshape, ToDevice, Transpose

tensor_methods.install(Tensor)

__all__ = ["Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Neg", "Clip", "Exp", "Log", "Relu", "Sigmoid",
           "Sqrt", "Tanh", "Max", "Mean", "Sum", "AsType", "GetItem", "Reshape", "ToDevice", "Transpose"]
