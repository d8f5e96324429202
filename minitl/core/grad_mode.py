"""Grad mode: whether ops record the graph (``no_grad`` / ``enable_grad``)."""
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
