"""Shape ops: reshape, transpose, indexing, device and dtype moves."""
import numpy as np

from ..core import backend
from ..core.backend import get_array_module
from ..core.function import Function


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {a.shape} ({a.size} elements) into {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Transpose(Function):
    @staticmethod
    def forward(ctx, a, axes=None):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        if sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {a.ndim} axes of shape {a.shape}")
        ctx.axes = tuple(ax % a.ndim for ax in axes)
        return a.transpose(ctx.axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.axes))


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.index = a.shape, index
        return a[index]

    @staticmethod
    def backward(ctx, g):
        # Integer-array indices may repeat: scatter-add so repeats accumulate.
        xp = get_array_module(g)
        out = xp.zeros(ctx.shape, dtype=g.dtype)
        if xp.__name__ == "numpy":
            np.add.at(out, ctx.index, g)
        else:  # pragma: no cover - GPU only
            import cupyx

            cupyx.scatter_add(out, ctx.index, g)
        return out


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        ctx.device = backend.device_of(a)
        return backend.to_device(a, device)

    @staticmethod
    def backward(ctx, g):
        return backend.to_device(g, ctx.device)


class AsType(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype)
