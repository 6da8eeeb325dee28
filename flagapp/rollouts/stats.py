"""Statistics for guardrails and experiments, in pure Python.

Why pure Python: the Django app must not pull scipy/numpy into every deployment just to
compare two proportions. Everything here is closed-form (normal approximations, the
regularized incomplete gamma function for chi-square tails) and is checked against scipy in
the test suite (``tests/flagapp/rollouts/test_stats*.py``), which is the only place scipy is used.

All functions are deterministic and side-effect free; they take counts, not events, so the
same code serves the ORM metric source, the Prometheus source and the simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "ProportionTest",
    "SampleRatioCheck",
    "chi2_sf",
    "normal_cdf",
    "normal_ppf",
    "percentile",
    "sample_ratio_mismatch",
    "sample_size_per_variant",
    "two_proportion_ztest",
]

_STD_NORMAL = NormalDist()


def normal_cdf(x: float) -> float:
    """Standard normal CDF via ``erfc`` (accurate in the tails, unlike ``1 - erf``)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_ppf(p: float) -> float:
    """Standard normal quantile. ``statistics.NormalDist`` uses Wichura's AS241 (1e-16)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    return _STD_NORMAL.inv_cdf(p)


@dataclass(frozen=True, slots=True)
class ProportionTest:
    """Outcome of comparing a treatment proportion with a control proportion.

    ``diff`` is treatment minus control (absolute, e.g. 0.012 = +1.2 percentage points).
    ``ci_low``/``ci_high`` bound ``diff`` at the requested confidence (unpooled Wald interval,
    the one people compute by hand); ``z``/``p_value`` are the pooled two-sided z-test, the
    textbook test of H0: p_treatment == p_control.
    """

    control_rate: float
    treatment_rate: float
    diff: float
    relative_lift: float | None
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1.0 - self.confidence


def two_proportion_ztest(
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    *,
    confidence: float = 0.95,
) -> ProportionTest:
    """Two-sided two-proportion z-test plus a confidence interval for the difference."""
    for name, value in (
        ("control_n", control_n),
        ("treatment_n", treatment_n),
        ("control_successes", control_successes),
        ("treatment_successes", treatment_successes),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0")
    if control_n == 0 or treatment_n == 0:
        raise ValueError("both groups need at least one observation")
    if control_successes > control_n or treatment_successes > treatment_n:
        raise ValueError("successes cannot exceed observations")
    p_c = control_successes / control_n
    p_t = treatment_successes / treatment_n
    diff = p_t - p_c
    pooled = (control_successes + treatment_successes) / (control_n + treatment_n)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control_n + 1.0 / treatment_n))
    if se_pooled == 0.0:
        z = 0.0
        p_value = 1.0
    else:
        z = diff / se_pooled
        p_value = math.erfc(abs(z) / math.sqrt(2.0))
    se = math.sqrt(p_c * (1.0 - p_c) / control_n + p_t * (1.0 - p_t) / treatment_n)
    half = normal_ppf(0.5 + confidence / 2.0) * se
    return ProportionTest(
        control_rate=p_c,
        treatment_rate=p_t,
        diff=diff,
        relative_lift=(diff / p_c) if p_c > 0 else None,
        z=z,
        p_value=p_value,
        ci_low=diff - half,
        ci_high=diff + half,
        confidence=confidence,
    )


def sample_size_per_variant(
    baseline_rate: float,
    minimum_detectable_effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = False,
) -> int:
    """Observations needed in EACH group to detect the effect with a two-sided z-test.

    ``minimum_detectable_effect`` is absolute (0.02 = two percentage points) unless
    ``relative`` (0.1 = +10% of the baseline). Uses the standard formula with the pooled
    variance under H0 and the unpooled variance under H1 (Fleiss, without continuity
    correction), rounded up.
    """
    if not 0.0 < baseline_rate < 1.0:
        raise ValueError("baseline_rate must be in (0, 1)")
    delta = minimum_detectable_effect * baseline_rate if relative else minimum_detectable_effect
    p1 = baseline_rate
    p2 = p1 + delta
    if delta == 0 or not 0.0 < p2 < 1.0:
        raise ValueError("baseline + effect must stay in (0, 1) and the effect must be non-zero")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must be in (0, 1)")
    p_bar = (p1 + p2) / 2.0
    z_a = normal_ppf(1.0 - alpha / 2.0)
    z_b = normal_ppf(power)
    numerator = z_a * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_b * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return math.ceil((numerator / delta) ** 2)


def _gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (Numerical Recipes gser/gcf)."""
    if x < 0 or a <= 0:
        raise ValueError("invalid arguments")
    if x == 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        # Series for P(a, x); Q = 1 - P.
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Continued fraction for Q(a, x) (modified Lentz).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(log_prefix) * h


def chi2_sf(statistic: float, df: int) -> float:
    """Survival function (upper tail) of the chi-square distribution."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if statistic <= 0:
        return 1.0
    return _gamma_q(df / 2.0, statistic / 2.0)


@dataclass(frozen=True, slots=True)
class SampleRatioCheck:
    """Chi-square goodness-of-fit of observed assignment counts against the intended split.

    A tiny p-value means assignment is broken (a sample-ratio mismatch): the results of the
    experiment cannot be trusted whatever they say, so the UI shows this before any lift.
    """

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    df: int
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], *, threshold: float = 0.001
) -> SampleRatioCheck:
    """Compare observed counts per variant with the intended weights (any positive scale).

    The default threshold 0.001 is the usual SRM alarm level: strict enough that a healthy
    experiment checked every few minutes rarely raises a false alarm.
    """
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("need the same number (>= 2) of observed counts and weights")
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive (drop variants that get no traffic)")
    total = sum(observed)
    weight_sum = float(sum(weights))
    expected = tuple(total * w / weight_sum for w in weights)
    if total == 0:
        return SampleRatioCheck(tuple(observed), expected, 0.0, len(observed) - 1, 1.0, threshold)
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    df = len(observed) - 1
    return SampleRatioCheck(
        tuple(observed), expected, statistic, df, chi2_sf(statistic, df), threshold
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default method)."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be in [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac
