"""Guardrail and experiment statistics, checked against scipy (a test-only dependency)."""

from __future__ import annotations

import math

import pytest

from flagapp.rollouts import stats

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")


@pytest.mark.parametrize("x", [-8.0, -3.1, -1.0, 0.0, 0.5, 1.96, 4.2, 9.0])
def test_normal_cdf__various_x__matches_scipy(x: float) -> None:
    assert stats.normal_cdf(x) == pytest.approx(scipy_stats.norm.cdf(x), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("p", [1e-9, 0.001, 0.025, 0.5, 0.8, 0.975, 0.999999])
def test_normal_ppf__various_p__matches_scipy(p: float) -> None:
    assert stats.normal_ppf(p) == pytest.approx(scipy_stats.norm.ppf(p), rel=1e-9)


def test_normal_ppf__p_outside_open_interval__raises() -> None:
    with pytest.raises(ValueError):
        stats.normal_ppf(1.0)


def _scipy_ztest(xc: int, nc: int, xt: int, nt: int) -> tuple[float, float]:
    pc, pt = xc / nc, xt / nt
    pooled = (xc + xt) / (nc + nt)
    se = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
    z = (pt - pc) / se
    return z, 2 * scipy_stats.norm.sf(abs(z))


@pytest.mark.parametrize(
    ("xc", "nc", "xt", "nt"),
    [(100, 1000, 130, 1000), (480, 5000, 560, 5100), (12, 400, 9, 410), (3, 10000, 40, 10000)],
)
def test_two_proportion_ztest__known_counts__matches_scipy(
    xc: int, nc: int, xt: int, nt: int
) -> None:
    result = stats.two_proportion_ztest(xc, nc, xt, nt)
    z, p = _scipy_ztest(xc, nc, xt, nt)
    assert result.z == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    pc, pt = xc / nc, xt / nt
    half = scipy_stats.norm.ppf(0.975) * math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    assert result.ci_low == pytest.approx(pt - pc - half, rel=1e-9)
    assert result.ci_high == pytest.approx(pt - pc + half, rel=1e-9)


def test_two_proportion_ztest__chi2_equivalence__p_value_equals_contingency_test() -> None:
    # The pooled two-sided z-test is the 2x2 chi-square test without Yates' correction.
    result = stats.two_proportion_ztest(100, 1000, 130, 1000)
    table = [[100, 900], [130, 870]]
    _, p, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.significant is True


def test_two_proportion_ztest__identical_groups__p_value_one_not_significant() -> None:
    result = stats.two_proportion_ztest(50, 1000, 50, 1000)
    assert result.z == 0.0
    assert result.p_value == pytest.approx(1.0)
    assert result.significant is False


def test_two_proportion_ztest__no_successes_anywhere__p_value_one() -> None:
    result = stats.two_proportion_ztest(0, 100, 0, 100)
    assert result.p_value == 1.0
    assert result.relative_lift is None


def test_two_proportion_ztest__empty_group__raises() -> None:
    with pytest.raises(ValueError):
        stats.two_proportion_ztest(0, 0, 1, 10)


def _power(n: int, p1: float, p2: float, alpha: float) -> float:
    p_bar = (p1 + p2) / 2
    se0 = math.sqrt(2 * p_bar * (1 - p_bar) / n)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    z_a = scipy_stats.norm.ppf(1 - alpha / 2)
    return float(scipy_stats.norm.cdf((abs(p2 - p1) - z_a * se0) / se1))


@pytest.mark.parametrize(
    ("baseline", "mde", "relative"),
    [(0.10, 0.02, False), (0.05, 0.10, True), (0.30, -0.03, False), (0.5, 0.01, False)],
)
def test_sample_size__known_inputs__reaches_power_with_scipy_and_is_minimal(
    baseline: float, mde: float, relative: bool
) -> None:
    n = stats.sample_size_per_variant(baseline, mde, relative=relative)
    p2 = baseline + (mde * baseline if relative else mde)
    assert _power(n, baseline, p2, 0.05) >= 0.8 - 1e-9
    assert _power(n - 1, baseline, p2, 0.05) < 0.8


def test_sample_size__classic_10pct_plus_2pp__3841() -> None:
    # Published value for p1=0.10, p2=0.12, alpha=0.05 two-sided, power 0.8 (Fleiss, no cc).
    assert stats.sample_size_per_variant(0.10, 0.02) == 3841


def test_sample_size__effect_leaves_unit_interval__raises() -> None:
    with pytest.raises(ValueError):
        stats.sample_size_per_variant(0.95, 0.1)


@pytest.mark.parametrize(
    ("x", "df"), [(0.0, 1), (0.5, 1), (3.84, 1), (10.0, 2), (25.0, 3), (1.0, 7), (150.0, 4)]
)
def test_chi2_sf__various__matches_scipy(x: float, df: int) -> None:
    assert stats.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_srm__balanced_assignment__no_mismatch() -> None:
    check = stats.sample_ratio_mismatch([5012, 4988], [1, 1])
    ref = scipy_stats.chisquare([5012, 4988], [5000, 5000])
    assert check.statistic == pytest.approx(ref.statistic)
    assert check.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert check.mismatch is False


def test_srm__broken_assignment__mismatch_detected() -> None:
    # Intended 50/50, observed 52.5/47.5 on 20k users: a classic SRM.
    check = stats.sample_ratio_mismatch([10500, 9500], [5000, 5000])
    ref = scipy_stats.chisquare([10500, 9500], [10000, 10000])
    assert check.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert check.mismatch is True


def test_srm__three_variants_unequal_weights__matches_scipy() -> None:
    observed = [1020, 1950, 7030]
    check = stats.sample_ratio_mismatch(observed, [1000, 2000, 7000])
    ref = scipy_stats.chisquare(observed, [1000, 2000, 7000])
    assert check.df == 2
    assert check.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_srm__no_traffic__p_value_one() -> None:
    assert stats.sample_ratio_mismatch([0, 0], [1, 1]).p_value == 1.0


@pytest.mark.parametrize("q", [0, 50, 90, 95, 99, 100])
def test_percentile__random_values__matches_numpy(q: float) -> None:
    values = [float((i * 7919) % 1000) / 3.0 for i in range(101)]
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile__no_values__raises() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)
