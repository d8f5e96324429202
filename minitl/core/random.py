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


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state`."""
    _generator.bit_generator.state = state
