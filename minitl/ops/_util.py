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
    if ndim == 0:  # PyTorch: dim 0 or -1 of a 0-d tensor reduces nothing
        for a in axis:
            if a not in (0, -1):
                raise ValueError(f"axis {a} is out of range for a tensor with 0 dimensions")
        return ()
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


def scatter_add_into(out, index, values):
    """``out[index] += values`` with repeated indices accumulating (NumPy's ``add.at``,
    ``cupyx.scatter_add`` on the GPU); ``out`` is changed in place and returned."""
    if get_array_module(out).__name__ == "numpy":
        import numpy as np

        np.add.at(out, index, values)
    else:  # pragma: no cover - GPU only
        import cupyx

        cupyx.scatter_add(out, index, values)
    return out


def along_dim_index(xp, index, dim):
    """The full index tuple that picks ``a[i0, .., index[i], .., ik]`` along ``dim``: the
    adjoint pair of gather/scatter (``index`` may be smaller than ``a`` in every dim)."""
    grids = list(xp.ogrid[tuple(slice(0, n) for n in index.shape)]) if index.ndim else []
    grids[dim] = index
    return tuple(grids)


def normalize_dim(dim, ndim, op):
    """One dimension as a non-negative int; a 0-d tensor accepts 0 and -1 (as PyTorch)."""
    n = max(ndim, 1)
    if not isinstance(dim, int) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim % n
