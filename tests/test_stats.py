"""Student-t quantiles and tails, mean intervals, paired differences."""
import math
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl.experiments.stats import mean_ci, paired_difference, t_ppf, t_sf

# Two-sided 95% / 99% critical values (textbook tables, to the digits given).
TEXTBOOK = [
    (0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 4, 2.776445105),
    (0.975, 9, 2.262157163), (0.975, 29, 2.045229642), (0.975, 120, 1.979930405),
    (0.995, 1, 63.656741163), (0.995, 10, 3.169272673), (0.995, 30, 2.749995654),
    (0.9995, 5, 6.868826626),
]


@pytest.mark.parametrize("p, df, expected", TEXTBOOK)
def test_t_ppf_textbook_values(p, df, expected):
    assert t_ppf(p, df) == pytest.approx(expected, abs=1e-9)
    assert t_ppf(1 - p, df) == pytest.approx(-expected, abs=1e-9)


def test_t_ppf_limits_and_closed_forms():
    assert t_ppf(0.5, 7) == 0.0
    assert t_ppf(1.0, 3) == math.inf and t_ppf(0.0, 3) == -math.inf
    z = statistics.NormalDist().inv_cdf(0.975)
    assert t_ppf(0.975, math.inf) == pytest.approx(z, abs=1e-15)
    assert t_ppf(0.975, 1e12) == pytest.approx(z, abs=1e-11)
    for p in (0.6, 0.9, 0.999):
        assert t_ppf(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)
        assert t_ppf(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
    # Continuous across the switch to the large-df series.
    assert t_ppf(0.975, 1e5) == pytest.approx(t_ppf(0.975, 1e5 + 1), abs=1e-9)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="probability"):
            t_ppf(bad, 3)
    for bad in (0, -2, math.nan):
        with pytest.raises(ValueError, match="degrees of freedom"):
            t_ppf(0.9, bad)


@given(p=st.floats(1e-9, 1 - 1e-9), df=st.floats(0.3, 1e6))
def test_t_ppf_inverts_t_sf(p, df):
    t = t_ppf(p, df)
    assert t_sf(t, df) == pytest.approx(1 - p, rel=1e-8, abs=1e-13)
    pp = 1.0 - p  # 1 - pp is exact, so pp and 1 - pp are true complements
    assert t_ppf(pp, df) == -t_ppf(1.0 - pp, df)


def test_t_sf_known_values():
    assert t_sf(0.0, 5) == 0.5
    assert t_sf(math.inf, 5) == 0.0 and t_sf(-math.inf, 5) == 1.0
    assert t_sf(1.0, 1) == pytest.approx(0.25, rel=1e-14)  # Cauchy: 1/2 - atan(1)/pi
    assert t_sf(2.0, 2) == pytest.approx(0.5 - 1 / math.sqrt(6), rel=1e-14)
    assert t_sf(1.96, math.inf) == pytest.approx(0.024997895148220435, rel=1e-14)
    for p, df, t in TEXTBOOK:
        assert t_sf(t, df) == pytest.approx(1 - p, rel=1e-8)


def test_matches_scipy():
    scipy_t = pytest.importorskip("scipy.stats").t
    dfs = np.arange(1, 1001)
    for p in (0.975, 0.995):
        ours = np.array([t_ppf(p, int(df)) for df in dfs])
        # Asked for 1e-6; held to 1e-9.
        np.testing.assert_allclose(ours, scipy_t.ppf(p, dfs), rtol=0, atol=1e-9)
    for df in (1, 3, 10, 100, 1e3, 1e4, 2.5):
        for t in (0.01, 0.5, 1.0, 2.0, 5.0, 30.0):
            assert t_sf(t, df) == pytest.approx(scipy_t.sf(t, df), rel=1e-11)
    for df in (1e5, 3e5, 1e8):
        assert t_ppf(0.995, df) == pytest.approx(scipy_t.ppf(0.995, df), abs=1e-10)


def test_mean_ci_by_hand():
    m = mean_ci([1, 2, 3, 4, 5])
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * s / sqrt(n)
    assert m.mean == 3.0 and m.std == pytest.approx(math.sqrt(2.5))
    assert (m.lo, m.hi) == pytest.approx((3 - half, 3 + half), abs=1e-8)
    mean, std, lo, hi = mean_ci([0.71, 0.74, 0.69], confidence=0.99)
    s = statistics.stdev([0.71, 0.74, 0.69])
    assert std == pytest.approx(s, rel=1e-14)
    assert hi - mean == pytest.approx(9.924843200918 * s / math.sqrt(3), rel=1e-10)


def test_mean_ci_edge_cases():
    mean, std, lo, hi = mean_ci([0.8])
    assert mean == 0.8 and math.isnan(std) and math.isnan(lo) and math.isnan(hi)
    assert mean_ci(np.full(4, 0.5)) == (0.5, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1, 2], confidence=95)


def test_paired_difference_by_hand():
    transfer = [0.82, 0.79, 0.85, 0.80, 0.84]
    scratch = [0.75, 0.76, 0.78, 0.70, 0.77]
    d = [0.07, 0.03, 0.07, 0.10, 0.07]
    r = paired_difference(transfer, scratch)
    assert r.n == 5
    assert r.mean == pytest.approx(statistics.mean(d), abs=1e-15)
    s = statistics.stdev(d)
    assert r.std == pytest.approx(s, rel=1e-12)
    half = 2.776445105 * s / math.sqrt(5)
    assert (r.lo, r.hi) == pytest.approx((0.068 - half, 0.068 + half), abs=1e-9)
    assert r.t == pytest.approx(0.068 / (s / math.sqrt(5)), rel=1e-12)


def test_paired_t_test_p_value():
    # Differences built so that t equals the 97.5% critical value: p must be 0.05.
    base = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])  # mean 0, sample std sqrt(2.5)
    d = base + 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    r = paired_difference(d, np.zeros(5))
    assert r.t == pytest.approx(2.776445105, rel=1e-12)
    assert r.p_value == pytest.approx(0.05, abs=1e-9)
    assert r.lo == pytest.approx(0.0, abs=1e-8)  # the interval just touches zero
    assert paired_difference(np.zeros(5), d).p_value == pytest.approx(0.05, abs=1e-9)


def test_paired_difference_edge_cases():
    r = paired_difference([1.0, 2.0], [0.0, 1.0])  # constant difference
    assert (r.mean, r.std, r.t, r.p_value) == (1.0, 0.0, math.inf, 0.0)
    r = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert r.mean == 0.0 and math.isnan(r.t) and math.isnan(r.p_value)
    r = paired_difference([3.0], [1.0])
    assert r.mean == 2.0 and r.n == 1 and math.isnan(r.lo) and math.isnan(r.p_value)
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1, 2, 3], [1, 2])


def test_matches_scipy_ttest_rel():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, 10)
    b = a - rng.normal(0.02, 0.03, 10)
    r = paired_difference(a, b)
    ref = scipy_stats.ttest_rel(a, b)
    assert r.t == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
