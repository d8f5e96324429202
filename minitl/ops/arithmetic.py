"""Broadcasting arithmetic: + - * / ** @ and negation, forward beside backward."""
from ..core.backend import get_array_module, quiet_errors
from ..core.function import Function
from ._util import unbroadcast


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        # d(a+b) = da + db: the gradient passes through, summed over broadcast axes.
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        # d(ab) = b da + a db
        a, b = ctx.saved
        da = unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with quiet_errors(get_array_module(a, b), divide="ignore", invalid="ignore"):  # x/0 = inf, 0/0 = NaN
            return a / b

    @staticmethod
    def backward(ctx, g):
        # d(a/b) = da / b - a db / b^2
        a, b = ctx.saved
        da = unbroadcast(g / b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-g * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        xp = get_array_module(a, b)
        with quiet_errors(xp, invalid="ignore", divide="ignore", over="ignore"):
            out = a ** b  # 0 ** -1 is inf, (-1) ** 0.5 NaN: values, not warnings
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        # d(a^b) = b a^(b-1) da + a^b ln(a) db, with PyTorch's conventions at the edges:
        # the base gradient is 0 where b == 0 (not 0 * 0^-1 = NaN), and the exponent
        # gradient is 0 where a == 0 and b >= 0 (the limit), -inf for a == 0 and b < 0.
        a, b, out = ctx.saved
        xp = get_array_module(a, b)
        da = db = None
        with quiet_errors(xp, invalid="ignore", divide="ignore", over="ignore"):
            if ctx.needs_input_grad[0]:
                da = unbroadcast(g * xp.where(b == 0, 0, b * a ** (b - 1)).astype(g.dtype, copy=False), a.shape)
            if ctx.needs_input_grad[1]:
                zero_limit = (a == 0) & (b >= 0)
                logs = xp.log(xp.where(zero_limit, 1, a))  # ln of a negative base is NaN, as in PyTorch
                db = unbroadcast(xp.where(zero_limit, 0, g * out * logs).astype(g.dtype, copy=False), b.shape)
        return da, db


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul needs at least 1-D operands, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        # Promote 1-D operands to matrices as NumPy does, then undo it.
        a, b = ctx.saved
        if a.ndim == 1 and b.ndim == 1:  # inner product
            return g * b if ctx.needs_input_grad[0] else None, g * a if ctx.needs_input_grad[1] else None
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :]
        if b.ndim == 1:
            g2 = g2[..., None]
        da = db = None
        if ctx.needs_input_grad[0]:
            da = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            db = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape).reshape(b.shape)
        return da, db
