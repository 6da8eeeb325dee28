"""Expiry reminder stages: the pure date logic (which stage is due on a given day)."""

from __future__ import annotations

import datetime as dt

import pytest

from flagapp.governance.stages import due_stage, stage_label

E = dt.date(2026, 3, 20)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (E - dt.timedelta(days=30), None),
        (E - dt.timedelta(days=8), None),
        (E - dt.timedelta(days=7), "before"),
        (E - dt.timedelta(days=1), "before"),
        (E, "due"),
        (E + dt.timedelta(days=1), "due"),  # catch-up when no beat ran on the day itself
        (E + dt.timedelta(days=2), "due"),
        (E + dt.timedelta(days=3), "overdue-1"),
        (E + dt.timedelta(days=5), "overdue-1"),
        (E + dt.timedelta(days=6), "overdue-2"),
        (E + dt.timedelta(days=31), "overdue-10"),
    ],
)
def test_due_stage__day_relative_to_expiry__stage(today: dt.date, expected: str | None) -> None:
    assert due_stage(E, today, days_before=7, every_days=3) == expected


def test_due_stage__no_expiry__none() -> None:
    assert due_stage(None, E) is None


def test_due_stage__bad_interval__value_error() -> None:
    with pytest.raises(ValueError):
        due_stage(E, E, every_days=0)


def test_stage_label__each_stage__readable() -> None:
    assert stage_label("before", E, E - dt.timedelta(days=1)) == "expires in 1 day (2026-03-20)"
    assert stage_label("due", E, E) == "expires today (2026-03-20)"
    assert stage_label("overdue-1", E, E + dt.timedelta(days=7)) == (
        "is 7 days overdue (expired 2026-03-20)"
    )
