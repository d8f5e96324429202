"""The backward pass: an iterative walk of the graph from a root to its leaves.

Kept apart from ``Function`` so that ``Tensor.backward`` can use it without
this module knowing the ``Tensor`` class: a leaf's gradient is wrapped by the
leaf's own class.
"""
from __future__ import annotations

from .grad_mode import no_grad


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
    if not leaf.requires_grad:
        return
    if g.dtype != leaf.data.dtype:
        g = g.astype(leaf.data.dtype)
    if leaf.grad is None:
        leaf.grad = type(leaf)._make(g)
    else:
        leaf.grad = type(leaf)._make(leaf.grad.data + g)
