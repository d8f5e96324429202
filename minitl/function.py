"""The graph: ``Function`` nodes, grad mode, and the iterative backward pass.

A ``Function`` subclass pairs ``forward(ctx, *arrays)`` on raw NumPy/CuPy
arrays with ``backward(ctx, grad)`` returning one gradient array (or None)
per positional input. ``Function.apply`` records the parents only when grad
mode is on and some input requires a gradient, so inference builds no graph.
"""
from __future__ import annotations

import contextlib

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode inside a ``with`` block or a decorated function."""

    mode = True

    def __enter__(self):
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record no graph."""

    mode = False


class enable_grad(_GradMode):
    """Context manager and decorator: turn graph recording back on."""

    mode = True


class Context:
    """Per-call scratch space: what forward saves for backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.freed = False

    def save_for_backward(self, *arrays):
        """Keep arrays for backward (freed after backward unless retained)."""
        self.saved = arrays

    def free(self):
        """Drop everything saved, keeping only the fact that it is gone."""
        needs = self.needs_input_grad
        self.__dict__.clear()
        self.needs_input_grad = needs
        self.freed = True


class Function:
    """A differentiable op; subclasses define ``forward`` and ``backward``."""

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the inputs' arrays and link the result into the graph."""
        from .tensor import Tensor

        device = None
        arrays = []
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise RuntimeError(
                        f"{cls.__name__}: expected all tensors on one device, "
                        f"found '{device}' and '{a.device}'; move them with .to(device)"
                    )
                arrays.append(a.data)
            else:
                arrays.append(a)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        track = _grad_enabled and any(needs)
        ctx = Context(needs)
        out = Tensor._make(cls.forward(ctx, *arrays, **kwargs), requires_grad=track)
        if track:
            out._fn = cls
            out._ctx = ctx
            out._parents = tuple(a if n else None for a, n in zip(args, needs))
        return out


def _topological_order(root):
    """Interior nodes reachable from ``root``, children after parents (no recursion)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node._parents:
            if p is not None and p._fn is not None and id(p) not in seen:
                stack.append((p, False))
    return order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` from ``root`` to every leaf that requires a gradient."""
    if root._fn is None:  # a leaf: its gradient is the seed itself
        _accumulate(root, grad)
        return
    order = _topological_order(root)
    grads = {id(root): grad}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx.freed:
            raise RuntimeError(
                f"trying to backward through the graph a second time ({node._fn.__name__} "
                "was already freed); pass retain_graph=True to the first backward()"
            )
        with no_grad():
            in_grads = node._fn.backward(ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for parent, pg in zip(node._parents, in_grads):
            if parent is None or pg is None:
                continue
            if pg.shape != parent.shape:
                raise RuntimeError(
                    f"{node._fn.__name__}.backward returned a gradient of shape {pg.shape} "
                    f"for an input of shape {parent.shape}"
                )
            if parent._fn is None:
                _accumulate(parent, pg)
            elif id(parent) in grads:
                grads[id(parent)] = grads[id(parent)] + pg
            else:
                grads[id(parent)] = pg
        if not retain_graph:
            ctx.free()


def _accumulate(leaf, g) -> None:
    """Add ``g`` into ``leaf.grad`` out of place (``g`` may alias another gradient)."""
    from .tensor import Tensor

    if not leaf.requires_grad:
        return
    if g.dtype != leaf.data.dtype:
        g = g.astype(leaf.data.dtype)
    if leaf.grad is None:
        leaf.grad = Tensor._make(g)
    else:
        leaf.grad = Tensor._make(leaf.grad.data + g)
