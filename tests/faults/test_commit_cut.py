"""Issue 10, finding 1: a committed change is always published, and its author learns it
committed.

Before: services published in ``transaction.on_commit``; when the PostgreSQL connection
dropped right after the COMMIT, the change was in the database but no snapshot carried it
(until some unrelated change), the API answered 500 and the author's retry got 409 for its
own change — while the admin showed the kill switch on. Here the fault proxy lets the
COMMIT of the kill switch reach PostgreSQL and cuts the connection before the answer comes
back, three times in a row (the finding was seen 3 times out of 3).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .helpers import ofrep_disabled, patch_state, ruleset_enabled, state
from .support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

#: The servers reconcile every 3 s (FAULTS_RECONCILE_INTERVAL); the bound allows a loaded
#: CI machine a few passes.
RECONCILE_BOUND_S = 15.0
ROUNDS = 3


def _write_with_retry(base: str, headers: dict[str, str], version: int, enabled: bool) -> Any:
    """What an API client does: send, and on a 5xx or a broken connection send the very
    same request again (same version, same idempotency key)."""
    key = str(uuid.uuid4())
    body = {"enabled": enabled}
    answers = []
    for _ in range(3):
        try:
            r = patch_state(base, {**headers, "Idempotency-Key": key}, version, body, "kill switch")
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)
            continue
        answers.append(r.status_code)
        if r.status_code < 500:
            return r, answers
    return None, answers


def test_commit_cut__pg_connection_dropped_after_commit__served_and_retry_not_409(
    shared: Any,
) -> None:
    dep, server = shared
    served_s: list[float] = []
    answers_all: list[Any] = []
    try:
        _rounds(dep, server, served_s, answers_all)
    finally:
        FIGURES.add(
            "COMMIT cut (PostgreSQL) x3: change served",
            faults=dep.proxy.commits_cut,
            changes_made=ROUNDS,
            changes_served=len(served_s),
            converge_s=max(served_s) if served_s else None,
            note=f"author answers {answers_all}",
        )


def _rounds(dep: Any, server: Any, served_s: list[float], answers_all: list[Any]) -> None:
    cut_before = dep.proxy.commits_cut
    for round_ in range(ROUNDS):
        current = state(server.url, dep.api_headers)
        enabled, version = not current["enabled"], current["version"]  # toggle
        dep.proxy.cut_after_commit(1)
        final, answers = _write_with_retry(server.url, dep.api_headers, version, enabled)
        answers_all.append(answers)
        dep.proxy.pass_through()
        assert dep.proxy.commits_cut == cut_before + round_ + 1, "the COMMIT was not cut"
        # The author learns that the change committed: never a 409 for its own change.
        assert final is not None and final.status_code == 200, answers
        assert final.json()["enabled"] is enabled
        start = time.monotonic()
        served = wait_until(
            lambda enabled=enabled: (
                ruleset_enabled(server.url, dep.sdk_headers) is enabled
                and ofrep_disabled(server.url, dep.sdk_headers) is (not enabled)
            ),
            timeout=RECONCILE_BOUND_S,
        )
        assert served is not None, (
            f"round {round_}: committed change not served within {RECONCILE_BOUND_S} s "
            f"(answers {answers})"
        )
        served_s.append(time.monotonic() - start)
