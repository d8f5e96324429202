"""The backward pass: an iterative walk of the graph from a root to its leaves.

Kept apart from ``Function`` so that ``Tensor.backward`` can use it without
this module knowing the ``Tensor`` class: a leaf's gradient is wrapped by the
leaf's own class.
"""
from __future__ import annotations

from .grad_mode import no_grad


class _Accumulated:
    """The type of :data:`ACCUMULATED`."""

    def __repr__(self):
        return "ACCUMULATED"


# What a backward returns for an input whose gradient it has already added into
# the buffer handed to it in ``ctx.grad_buffers`` (nothing is left to add).
ACCUMULATED = _Accumulated()


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


def _chain(root):
    """The nodes from ``root`` down, when each has at most one interior parent
    (a chain, the shape of most training graphs); None otherwise."""
    order = []
    node = root
    while node is not None:
        order.append(node)
        nxt = None
        for p in node._parents:
            if p is not None and p._fn is not None:
                if nxt is not None:
                    return None
                nxt = p
        node = nxt
    return order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` from ``root`` to every leaf that requires a gradient."""
    if root._fn is None:  # a leaf: its gradient is the seed itself
        _accumulate(root, grad)
        return
    # A chain needs no topological sort: its order is the walk down from the root.
    chain = _chain(root)
    order = chain if chain is not None else _topological_order(root)[::-1]
    grads = {id(root): grad}
    # One grad-mode switch for the whole walk, not one per node.
    with no_grad():
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            fn = node._fn
            if ctx.freed:
                raise RuntimeError(
                    f"trying to backward through the graph a second time ({fn.__name__} "
                    "was already freed); pass retain_graph=True to the first backward()"
                )
            if fn.adds_into_grads:  # it may add straight into the leaves' .grad
                ctx.grad_buffers = grad_buffers(node._parents)
            in_grads = fn.backward(ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, pg in zip(node._parents, in_grads):
                if parent is None or pg is None or pg is ACCUMULATED:
                    continue
                if pg.shape != parent.data.shape:
                    raise RuntimeError(
                        f"{fn.__name__}.backward returned a gradient of shape {pg.shape} "
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


def grad_buffers(parents):
    """Per parent, the array of its ``.grad`` when gradients may be added into it
    in place (a leaf whose ``.grad`` the engine made itself: see ``_accumulate``),
    else None."""
    out = []
    for p in parents:
        grad = None if p is None or p._fn is not None or not p.requires_grad else p.grad
        ok = (grad is not None and _owns(grad) and grad.data.dtype == p.data.dtype
              and grad.data.shape == p.data.shape)
        out.append(grad.data if ok else None)
    return tuple(out)


def _owns(grad) -> bool:
    """Whether the engine made ``grad``'s array as a sum of its own (so no other
    gradient, input or user array aliases it)."""
    return getattr(grad, "_engine_sum", None) is grad.data


def _accumulate(leaf, g) -> None:
    """Add ``g`` into ``leaf.grad``, as PyTorch does: in place once ``.grad`` is an
    array the engine made (``grad += g``), else out of place. The first gradient
    is stored as it comes (no copy), and may alias another gradient or the
    user's seed, so the first sum makes a new array; later ones add into it."""
    if not leaf.requires_grad:
        return
    if g.dtype != leaf.data.dtype:
        g = g.astype(leaf.data.dtype)
    grad = leaf.grad
    if grad is None:
        leaf.grad = type(leaf)._make(g)
    elif _owns(grad) and grad.data.shape == g.shape:
        grad.data += g
    else:
        total = grad.data + g
        leaf.grad = type(leaf)._make(total)
        leaf.grad._engine_sum = total
