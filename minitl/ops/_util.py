"""Helpers shared by the ops."""
from ..core.backend import get_array_module


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def normalize_axis(axis, ndim):
    """``axis`` as a sorted tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % max(ndim, 1))
    return tuple(sorted(out))


def expand_reduced(grad, shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts back over ``shape``."""
    if not keepdims:
        grad = grad.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return get_array_module(grad).broadcast_to(grad, shape)
