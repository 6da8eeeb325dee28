"""Step lists, schedules, and the serve fragment a step compiles to (checked with the engine
where the engine is available)."""

from __future__ import annotations

import itertools

import pytest

from flagapp.rollouts import schedule


def test_build_steps__default__1_10_50_100_percent() -> None:
    assert schedule.build_steps("steps") == (100, 1000, 5000, 10000)


def test_linear_steps__five__equal_increments_to_100() -> None:
    assert schedule.linear_steps(5, first=100) == (100, 2575, 5050, 7525, 10000)


def test_s_curve_steps__six__slow_start_fast_middle_and_valid() -> None:
    steps = schedule.s_curve_steps(6, first=100)
    assert schedule.validate_steps(steps) == []
    increments = [b - a for a, b in itertools.pairwise(steps)]
    assert increments[0] < increments[2] and increments[-1] < increments[2]


def test_s_curve_steps__many_small__still_strictly_increasing() -> None:
    assert schedule.validate_steps(schedule.s_curve_steps(40, first=1)) == []


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one"),
        ([100, 100, 10000], "strictly increase"),
        ([100, 5000], "last step must be 100%"),
        ([0, 10000], "1..10000"),
        ([100, 10001], "1..10000"),
        ([1.5, 10000], "integer"),
        ([True, 10000], "integer"),
    ],
)
def test_validate_steps__bad_list__names_problem(steps: list[int], message: str) -> None:
    assert any(message in e for e in schedule.validate_steps(steps))


def test_build_steps__unknown_kind__raises() -> None:
    with pytest.raises(ValueError):
        schedule.build_steps("exponential")


def test_rollout_serve__partial__treatment_first_basis_points() -> None:
    serve = schedule.rollout_serve("on", "off", 1000, "checkout.new-flow")
    assert serve == {
        "rollout": {
            "bucket_by": "targetingKey",
            "salt": "checkout.new-flow",
            "weights": [{"variant": "on", "weight": 1000}, {"variant": "off", "weight": 9000}],
        }
    }


def test_rollout_serve__full__plain_variant() -> None:
    assert schedule.rollout_serve("on", "off", 10000, "s") == {"variant": "on"}


@pytest.mark.parametrize(
    ("bps", "text"), [(1, "0.01%"), (100, "1%"), (1050, "10.5%"), (10000, "100%")]
)
def test_format_bps__values__human_percent(bps: int, text: str) -> None:
    assert schedule.format_bps(bps) == text
