"""The rollout simulation: the real WSGI app on 127.0.0.1, FlagappProvider, track events.

Needs ``transactional_db``: the in-process HTTP server answers from other threads, which
only see committed rows (SQLite's shared in-memory test database)."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from flagapp.rollouts.simulation import SimClock

pytestmark = pytest.mark.slow


def test_sim_clock__jumps__to_real_inverts_and_clamps_inside_jumps() -> None:
    clock = SimClock()
    before = clock.now()
    clock.advance(dt.timedelta(minutes=10))
    after_jump = clock.now()
    assert after_jump - before >= dt.timedelta(minutes=10)
    # A simulated instant before the jump maps to itself, one inside the jump to the
    # real instant of the jump, one after it back by the offset.
    assert clock.to_real(before) == before
    inside = before + dt.timedelta(minutes=5)
    assert abs((clock.to_real(inside) - before).total_seconds()) < 1
    assert clock.to_real(after_jump) == after_jump - dt.timedelta(minutes=10)
    with pytest.raises(ValueError):
        clock.advance(dt.timedelta(seconds=-1))


def test_simulate_rollout__both_scenarios__healthy_completes_spike_rolled_back(
    transactional_db: Any, tmp_path: Any
) -> None:
    from flagapp.models import RolloutPlan, RolloutTransition, SdkEvent

    out = StringIO()
    call_command(
        "flagapp_simulate_rollout",
        "--users",
        "800",
        "--min-sample",
        "60",
        "--svg-dir",
        str(tmp_path),
        stdout=out,
    )
    text = out.getvalue()
    assert "simulation finished as expected" in text
    plans = {p.flag.key.split(".")[1].split("-")[0]: p for p in RolloutPlan.objects.all()}
    assert plans["healthy"].state == "completed"
    assert plans["spike"].state == "rolled_back"
    rollback = RolloutTransition.objects.get(plan=plans["spike"], action="rollback")
    assert rollback.reason.startswith("automatic rollback: error_rate ")
    assert "> 1.0% (n=" in rollback.reason
    # Every step was taken on stored events sent by the provider (exposures and tracks).
    assert SdkEvent.objects.filter(kind="exposure").count() >= 800 * 4
    assert SdkEvent.objects.filter(kind="tracking", key="error").exists()
    assert "T+" in text and "rolled_back" in text and "completed" in text
    assert "email to owner@sim.example: [flagapp] sim.spike-" in text
    svgs = sorted(p.name for p in tmp_path.iterdir())
    assert len(svgs) == 2 and all(name.endswith(".svg") for name in svgs)
