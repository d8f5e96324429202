"""Argument normalisation shared by the functional files (kept apart so that
they need not import each other)."""
from __future__ import annotations


def pair(v, name):
    """``v`` as an ``(h, w)`` pair: an int is used for both; ``name`` is for the error."""
    if isinstance(v, bool):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if isinstance(v, int):
        return (v, v)
    try:
        v = tuple(int(i) for i in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v


def where(layer):
    """``'Conv2d(...): '`` prefix for an error message, or nothing."""
    return f"{layer}: " if layer else ""


def bind(name: str, defaults: dict, args: tuple, kwargs: dict) -> dict:
    """``defaults`` updated by positional ``args`` (in their order) and ``kwargs``, as a
    constructor taking those names would; an extra or unknown argument raises ``TypeError``."""
    params = dict(defaults)
    if len(args) > len(params):
        raise TypeError(f"{name} takes at most {len(params)} positional arguments, got {len(args)}")
    params.update(zip(params, args))
    unknown = set(kwargs) - set(params)
    if unknown:
        raise TypeError(f"{name}: unexpected arguments {sorted(unknown)}; expected {sorted(params)}")
    params.update(kwargs)
    return params
