"""Where seeds come from when the caller gives none."""
from __future__ import annotations

import numpy as np

from ..core.random import generator


def draw_seed() -> int:
    """A fresh seed from minitl's global generator, so ``minitl.manual_seed`` makes it repeatable.

    """
    return int(generator().integers(0, 2**63 - 1))


def make_rng(seed) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``, drawing the seed from minitl's generator when None."""
    return np.random.default_rng(draw_seed() if seed is None else seed)
