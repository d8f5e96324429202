"""``Tensor``: an array (NumPy on the CPU, CuPy on the GPU) plus its place in the graph."""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd import run_backward

DEFAULT_FLOAT = np.float32


class Tensor:
    """An n-dimensional array that can record the ops applied to it for backward.

    ``data`` is the raw array; ``grad`` is a Tensor (or None) filled by
    :meth:`backward`. Tensors made by ops hold ``_fn``/``_ctx``/``_parents``,
    the node that produced them; leaves hold None there.
    """

    __slots__ = ("data", "requires_grad", "grad", "_fn", "_ctx", "_parents", "__weakref__", "__dict__")
    __array_priority__ = 1000  # numpy_array + tensor defers to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None):
        self.data = _as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._fn = None
        self._ctx = None
        self._parents = ()

    @classmethod
    def _make(cls, array, requires_grad: bool = False) -> "Tensor":
        """Wrap an array produced by an op without copying or converting it."""
        t = Tensor.__new__(Tensor)
        t.data = array
        t.requires_grad = requires_grad
        t.grad = None
        t._fn = None
        t._ctx = None
        t._parents = ()
        return t

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        """The shape as a tuple, as PyTorch's ``size()``; ``size(d)`` is one dimension."""
        if dim is None:
            return tuple(self.data.shape)
        nd = self.data.ndim
        if not -max(nd, 1) <= dim < max(nd, 1) or nd == 0:
            raise IndexError(f"size(): dimension {dim} is out of range for a tensor of shape {self.shape}")
        return int(self.data.shape[dim])

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def dim(self) -> int:
        """The number of dimensions (``ndim``)."""
        return self.data.ndim

    def element_size(self) -> int:
        """Bytes per element."""
        return int(self.data.dtype.itemsize)

    @property
    def is_leaf(self) -> bool:
        return self._fn is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __bool__(self) -> bool:
        # PyTorch's rule: only a one-element tensor has a truth value (without this,
        # Python would use __len__ and call tensor([False]) true).
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; "
                               "use .any() or .all()")
        return bool(self.data.reshape(()).item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=20)
        return f"tensor({body}, dtype={self.dtype}{dev}{grad})"

    # ------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU when needed)."""
        return backend.to_device(self.data, "cpu")

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        """Nested Python lists of the values."""
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if not requires_grad and self._fn is not None:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors; use detach()")
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    # ------------------------------------------------------------ operators
    # The differentiable operators and methods are Functions of minitl.ops (the
    # layer above); minitl.ops.tensor_methods.install binds them here when the
    # package is imported, so core never imports ops. The methods are the
    # functions of ops/{math,shape,reduce}_functions.py (minitl.sum(t) is t.sum()).
    # Where each comes from:
    #   + - * / ** @ unary- add sub mul div pow matmul neg
    #                                ops/math_functions.py -> ops/arithmetic.py Add Sub Mul Div Pow MatMul Neg
    #                                (PyTorch's type promotion: ops/promotion.py)
    #   exp log sqrt tanh sigmoid relu
    #                                ops/elementwise.py  Exp Log Sqrt Tanh Sigmoid Relu
    #   abs sin cos tan rsqrt log2 log10 log1p expm1 exp2 erf square reciprocal maximum minimum
    #   clamp clip clamp_min clamp_max (tensor bounds)
    #                                ops/unary.py        Abs Sin ... Maximum Minimum ClampTensor; Clip (number bounds)
    #   sign floor ceil round trunc isnan isinf isfinite isclose allclose equal nonzero logical_* ~ & |
    #   < <= > >= == != argmax argmin any all
    #                                no gradient: plain array results
    #   lerp                         a composition of + - *
    #   t[index] t[index] = v        ops/indexing.py     GetItem (PyTorch's indexing rule: torch_index), setitem
    #   gather scatter scatter_add masked_fill
    #                                ops/indexing.py     Gather Scatter Where
    #   reshape view view_as reshape_as flatten squeeze unsqueeze unflatten
    #                                ops/shape.py        Reshape
    #   transpose permute movedim T mT
    #                                ops/shape.py        Transpose
    #   expand expand_as repeat flip roll tril triu
    #                                ops/arrange.py      Expand Repeat Flip Roll Tri
    #   narrow split chunk unbind index_select
    #                                ops/indexing.py     GetItem
    #   clone                        ops/shape.py        Clone
    #   to cpu cuda astype float double half long int bool type_as
    #                                ops/shape.py        ToDevice AsType
    #   new_zeros new_ones new_empty new_full new_tensor
    #                                core/creation.py (no graph)
    #   sum mean max min amax amin prod var std logsumexp norm
    #                                ops/reduce.py       Sum Mean Max Prod Var LogSumExp Norm2
    #                                (max(dim)/min(dim): indexing.py Gather at the arg index)
    #   cumsum cumprod               ops/scan.py         CumSum CumProd
    #   sort argsort topk            ops/indexing.py     Gather at the sorting indices
    # tests/test_layout.py checks that this list and the installed names agree.
    INSTALLED = (
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
        "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__abs__", "__invert__", "__and__", "__or__",
        "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__hash__", "__getitem__", "__setitem__",
        "add", "sub", "mul", "div", "pow", "matmul", "neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu",
        "abs", "sign", "sin", "cos", "tan", "rsqrt", "log2", "log10", "log1p", "expm1", "exp2", "erf", "square",
        "reciprocal", "floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "isclose", "allclose",
        "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "lerp", "equal", "nonzero",
        "logical_not", "logical_and", "logical_or",
        "squeeze", "unsqueeze", "expand", "expand_as", "repeat", "flip", "roll", "tril", "triu", "unflatten",
        "gather", "scatter", "scatter_add", "index_select", "masked_fill", "narrow", "split", "chunk", "unbind",
        "movedim", "clone",
        "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "var", "std", "logsumexp",
        "any", "all", "cumsum", "cumprod", "norm", "sort", "argsort", "topk",
        "reshape", "view", "view_as", "reshape_as", "transpose", "permute", "flatten", "T", "mT",
        "to", "cpu", "cuda", "astype", "type_as", "float", "double", "half", "long", "int", "bool",
        "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor",
    )

    # -------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` may be omitted only for a one-element tensor (it is then 1).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (it has no graph)")
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, got shape {self.shape}; "
                    "pass grad= of the same shape"
                )
            g = backend.get_array_module(self.data).ones_like(self.data)
        else:
            g = grad.data if isinstance(grad, Tensor) else _as_array(grad, self.dtype, self.device)
            if tuple(g.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(g.shape)}, tensor has shape {self.shape}")
            g = g.astype(self.dtype, copy=False)
        run_backward(self, g, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None


def _as_array(data, dtype=None, device=None):
    """Convert ``data`` to an array on ``device``; Python floats default to float32."""
    if isinstance(data, Tensor):
        data = data.data
    if device is None:
        device = backend.device_of(data)
    device = backend.normalize_device(device)
    xp = backend.xp_for(device)
    if dtype is not None:
        dtype = np.dtype(dtype)
    if backend.is_cupy_array(data) or isinstance(data, np.ndarray):
        arr = backend.to_device(data, device)
    else:
        arr = np.asarray(data)
        # PyTorch's rule: Python floats become float32 (arrays keep their dtype).
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(DEFAULT_FLOAT)
        arr = backend.to_device(arr, device) if device == "cuda" else arr
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"unsupported dtype {arr.dtype}; minitl tensors hold numbers or booleans")
    return xp.asarray(arr)


def tensor(data, requires_grad: bool = False, dtype=None, device: str = "cpu") -> Tensor:
    """Make a leaf tensor from a list, scalar, NumPy/CuPy array or Tensor (copied)."""
    t = Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
    if t.data is data or (isinstance(data, Tensor) and t.data is data.data):
        t.data = t.data.copy()
    return t
