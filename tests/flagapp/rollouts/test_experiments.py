"""Experiment analysis from stored events: assignment, conversions, z-test, SRM."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from flagapp import services
from flagapp.models import Experiment, SdkEvent
from flagapp.rollouts.experiments import analyse, summarise
from flagapp.rollouts.views import experiment_results_svg

scipy_stats = pytest.importorskip("scipy.stats")
T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def _expose(env: Any, flag: str, variant: str, users: range, at: dt.datetime, p: str = "") -> None:
    SdkEvent.objects.bulk_create(
        SdkEvent(
            environment=env,
            kind="exposure",
            key=flag,
            flag_key=flag,
            variant=variant,
            targeting_key=f"{p}{variant}-{i}",
            timestamp=at,
        )
        for i in users
    )


def _convert(env: Any, variant: str, users: range, at: dt.datetime, p: str = "") -> None:
    SdkEvent.objects.bulk_create(
        SdkEvent(
            environment=env,
            kind="tracking",
            key="purchase",
            targeting_key=f"{p}{variant}-{i}",
            timestamp=at,
        )
        for i in users
    )


@pytest.fixture
def experiment(make_flag: Callable[..., Any], envs: dict[str, Any]) -> Experiment:
    flag = make_flag("shop.checkout-button", flag_type="experiment", expires_on=None)
    env = envs["production"]
    services.update_flag_state(
        flag,
        env,
        enabled=True,
        actor=None,
        reason="50/50",
        fallthrough={
            "rollout": {
                "weights": [{"variant": "on", "weight": 5000}, {"variant": "off", "weight": 5000}]
            }
        },
    )
    return Experiment.objects.create(
        flag=flag,
        environment=env,
        name="green button",
        control_variant="off",
        conversion_event="purchase",
        started_at=T0,
        minimum_detectable_effect=0.02,
    )


def test_analyse__known_counts__rates_ztest_and_ci_match_scipy(experiment: Experiment) -> None:
    env = experiment.environment
    flag = experiment.flag.key
    _expose(env, flag, "off", range(1000), T0 + dt.timedelta(minutes=1))
    _expose(env, flag, "on", range(1000), T0 + dt.timedelta(minutes=1))
    _convert(env, "off", range(100), T0 + dt.timedelta(minutes=5))
    _convert(env, "on", range(130), T0 + dt.timedelta(minutes=5))
    # Noise that must not count: a conversion before the user's exposure, a second
    # exposure of a control user to "on", an event outside the window.
    _convert(env, "on", range(900, 901), T0 - dt.timedelta(minutes=5), p="early")
    SdkEvent.objects.create(
        environment=env,
        kind="exposure",
        key=flag,
        flag_key=flag,
        variant="on",
        targeting_key="off-0",
        timestamp=T0 + dt.timedelta(minutes=3),
    )
    results = analyse(experiment, now=T0 + dt.timedelta(hours=1))
    by = {v.variant: v for v in results.variants}
    assert (by["off"].users, by["off"].conversions) == (1000, 100)
    assert (by["on"].users, by["on"].conversions) == (1000, 130)
    test = by["on"].test
    assert test is not None and by["off"].test is None
    _, p, _, _ = scipy_stats.chi2_contingency([[130, 870], [100, 900]], correction=False)
    assert test.p_value == pytest.approx(p, rel=1e-9)
    assert test.significant and test.ci_low > 0
    assert results.srm is not None and results.srm.mismatch is False
    # Sample size from the observed control rate (10%) and the 2pp MDE: 3841 per variant.
    assert results.sample_size_per_variant == 3841
    data = results.as_dict()
    assert data["variants"][1]["significant"] is True
    assert data["sample_ratio_mismatch"]["mismatch"] is False
    svg = experiment_results_svg(results)
    assert "<svg" in svg and "(control)" in svg


def test_analyse__broken_assignment__sample_ratio_mismatch_flagged(experiment: Experiment) -> None:
    env = experiment.environment
    flag = experiment.flag.key
    _expose(env, flag, "off", range(5500), T0 + dt.timedelta(minutes=1))
    _expose(env, flag, "on", range(4500), T0 + dt.timedelta(minutes=1))
    results = analyse(experiment, now=T0 + dt.timedelta(hours=1))
    assert results.srm is not None
    ref = scipy_stats.chisquare([5500, 4500], [5000, 5000])
    assert results.srm.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert results.srm.mismatch is True


def test_summarise__explicit_weights_three_variants__srm_against_weights() -> None:
    assignments = {f"a{i}": "off" for i in range(800)} | {f"b{i}": "on" for i in range(100)}
    assignments |= {f"c{i}": "blue" for i in range(100)}
    r = summarise(
        assignments,
        set(),
        control="off",
        weights={"off": 8, "on": 1, "blue": 1},
        since=T0,
        until=T0,
    )
    assert r.srm is not None and r.srm.mismatch is False and r.srm.df == 2
    assert [v.variant for v in r.variants] == ["off", "on", "blue"]


def test_summarise__fixed_variant_no_split__no_srm_check() -> None:
    r = summarise({"u": "off"}, {"u"}, control="off", weights={}, since=T0, until=T0)
    assert r.srm is None
    assert r.variants[0].rate == 1.0
