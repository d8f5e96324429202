"""The global random generator: every initialisation and dropout mask draws from it."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed minitl's generator (weights, dropout, loader shuffles) and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """The global generator."""
    return _generator


def get_state() -> dict:
    """The generator's state, for checkpoints."""
    return _generator.bit_generator.state


def check_state(state, bit_generator=None) -> None:
    """Raise ``ValueError`` unless ``state`` is one :func:`get_state` could have returned.

    It is tried on a fresh bit generator of the same kind (``bit_generator``'s,
    default the global one's), so nothing in use changes.
    """
    kind = type(bit_generator if bit_generator is not None else _generator.bit_generator)
    if not isinstance(state, dict) or state.get("bit_generator") != kind.__name__:
        raise ValueError(f"a random state must be the dict of a {kind.__name__} bit generator's .state")
    try:
        kind().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"invalid {kind.__name__} state: {e}") from None


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state` (checked first: a bad one changes nothing)."""
    check_state(state)
    _generator.bit_generator.state = state
