"""The error function for NumPy and CuPy arrays alike (NumPy has none, and SciPy is not a dependency).

|x| < 3: erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)), a series of
positive terms (no cancellation); 60 terms reach double precision at |x| = 3.
|x| >= 3: erfc(x) by its continued fraction (Abramowitz & Stegun 7.1.14), 60 levels deep.
"""
from __future__ import annotations

import math

from ..core.backend import get_array_module, quiet_errors

_TERMS = 60


def erf(a):
    """erf of every element of ``a`` (float32 or float64, kept), accurate to about 1e-15."""
    xp = get_array_module(a)
    x = a.astype("float64", copy=False)
    with quiet_errors(xp, over="ignore", invalid="ignore", divide="ignore"):
        small = xp.minimum(xp.abs(x), 3.0)
        term = small.copy()
        total = small.copy()
        twice_sq = 2.0 * small * small
        for n in range(1, _TERMS):
            term = term * twice_sq / (2 * n + 1)
            total = total + term
        series = (2.0 / math.sqrt(math.pi)) * xp.exp(-small * small) * total
        big = xp.maximum(xp.abs(x), 3.0)
        frac = xp.zeros_like(big)
        for k in range(_TERMS, 0, -1):  # evaluate x + (1/2)/(x + 1/(x + (3/2)/(x + ...))) from the inside
            frac = (k / 2.0) / (big + frac)
        erfc = xp.exp(-big * big) / math.sqrt(math.pi) / (big + frac)
        out = xp.where(xp.abs(x) < 3.0, xp.sign(x) * series, xp.sign(x) * (1.0 - erfc))
    out = xp.where(xp.isnan(x), x, out)
    return out.astype(a.dtype, copy=False)
