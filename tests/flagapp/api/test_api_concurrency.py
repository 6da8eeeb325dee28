"""Two concurrent writes naming the same version: exactly one wins, the other gets 409.

Real HTTP against pytest-django's ``live_server`` (a threaded server: each request has its
own thread and database connection) on PostgreSQL, whose row locks are what the version
check relies on. Two client threads start each write at the same instant (a barrier); a
few rounds per resource make an accidental pass unlikely. SQLite serializes writers and
keeps an in-memory test database on one connection, so these tests need PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from flagapp import services
from flagapp.api.tokens import create_api_token
from flagapp.models import Environment, Flag, FlagState, Segment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 4


@pytest.fixture
def setup(live_server: Any) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        pytest.skip("needs FLAGAPP_TEST_DB=postgres (row locks decide the race)")
    group = Group.objects.create(name="payments")
    for order, key in enumerate(("staging", "production")):
        services.create_environment(key=key, name=key, order=order, actor=None, reason="setup")
    services.create_flag(
        key="checkout.new-flow",
        name="New checkout",
        owner=group,
        expires_on=dt.date.today() + dt.timedelta(days=30),
        actor=None,
        reason="setup",
    )
    services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    admin = User.objects.create_superuser("racer", "racer@example.com", "x")
    return {"base": live_server.url, "token": create_api_token(admin)[1]}


def _race(url: str, token: str, version: int, bodies: list[dict[str, Any]]) -> list[Any]:
    """Send one PATCH per body at the same instant; return the responses in body order."""
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def send(i: int) -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait(timeout=30)
            results[i] = client.patch(
                url,
                json=bodies[i],
                headers={
                    "Authorization": f"Token {token}",
                    "If-Match": f'"{version}"',
                    "X-Change-Reason": f"writer {i}",
                },
            )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), "a writer did not finish"
    return results


def _check_one_winner(responses: list[Any], version_before: int) -> int:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409], [(r.status_code, r.text[:300]) for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    winner_index = next(i for i, r in enumerate(responses) if r.status_code == 200)
    assert loser.json()["current_version"] > version_before
    return winner_index


def test_race__flag_state_same_version__exactly_one_wins_nothing_lost(
    setup: dict[str, Any],
) -> None:
    url = f"{setup['base']}/api/v1/flags/checkout.new-flow/environments/staging/"
    for round_ in range(ROUNDS):
        state = FlagState.objects.get(environment__key="staging")
        # Bodies differ from each other and from every earlier round: an identical write is a
        # no-op success, which would make two 200s legitimate.
        bodies = [
            {"rules": [{"id": f"r{round_}w{i}", "when": [], "serve": {"variant": "on"}}]}
            for i in range(2)
        ]
        responses = _race(url, setup["token"], state.version, bodies)
        winner = _check_one_winner(responses, state.version)
        state.refresh_from_db()
        assert state.version == responses[winner].json()["version"] == state.version
        assert [r.rule_id for r in state.rules.all()] == [f"r{round_}w{winner}"]
        last = state.history.first()
        assert last.history_change_reason == f"writer {winner}"


def _race_versioned(
    setup: dict[str, Any], url: str, current: Callable[[], Any], field: str
) -> None:
    for round_ in range(ROUNDS):
        obj = current()
        before = obj.version
        bodies = [{field: f"name {round_}-{i}"} for i in range(2)]
        responses = _race(url, setup["token"], before, bodies)
        winner = _check_one_winner(responses, before)
        obj = current()
        assert getattr(obj, field) == f"name {round_}-{winner}"
        assert obj.version == responses[winner].json()["version"]


def test_race__flag_same_version__exactly_one_wins(setup: dict[str, Any]) -> None:
    _race_versioned(
        setup,
        f"{setup['base']}/api/v1/flags/checkout.new-flow/",
        lambda: Flag.objects.get(key="checkout.new-flow"),
        "name",
    )


def test_race__segment_same_version__exactly_one_wins(setup: dict[str, Any]) -> None:
    _race_versioned(
        setup,
        f"{setup['base']}/api/v1/segments/beta/",
        lambda: Segment.objects.get(key="beta"),
        "name",
    )


def test_race__environment_same_version__exactly_one_wins(setup: dict[str, Any]) -> None:
    _race_versioned(
        setup,
        f"{setup['base']}/api/v1/environments/staging/",
        lambda: Environment.objects.get(key="staging"),
        "name",
    )
