"""Issue 10, findings 5 and 6: events are stored exactly once, and the blast-radius sample
cannot be rigged by an SDK key holder.

Finding 5, before: NaN/Infinity (Python's json emits them) or a NUL character in one event
made the whole batch a 500 after the exposure rows were committed; the provider resent the
batch, and 201 events became 804 rows. Finding 6, before: one POST of 1,000 crafted
exposures turned a "serve on to 100%" preview from 58 of 99 affected users into 0 of 1,000.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .helpers import FLAG, STATE_PATH, state

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]


def _exposure(key: str, plan: str = "free", variant: str = "off") -> dict[str, Any]:
    return {
        "kind": "exposure",
        "flag": FLAG,
        "variant": variant,
        "value": variant == "on",
        "context": {"targetingKey": key, "plan": plan},
        "timestamp": "2026-11-23T18:20:00.123+00:00",
        "details": {"reason": "STATIC"},
    }


def _post(base: str, headers: dict[str, str], body: str, batch_id: str) -> Any:
    try:
        return httpx.post(
            base + "/sdk/v1/events",
            content=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "X-Flagapp-Batch-Id": batch_id,
            },
            timeout=30,
        )
    except httpx.HTTPError as exc:
        return exc


def test_events__nan_nul_batch_resent_through_commit_cut__stored_exactly_once(
    shared: Any,
) -> None:
    dep, server = shared
    faults_before = dep.proxy.faults
    run = secrets.token_hex(3)
    good = [_exposure(f"{run}-user-{i}") for i in range(48)]
    nan_event = {**_exposure(f"{run}-nan"), "details": {"score": float("nan")}}
    nul_event = _exposure(f"{run}-nul\x00")
    # json.dumps writes NaN as the bare token NaN, as a Python provider's json would.
    body = json.dumps({"events": [*good[:20], nan_event, *good[20:], nul_event]})
    batch_id = str(uuid.uuid4())

    answers: list[Any] = []
    dep.proxy.cut_after_commit(1)  # the batch commits; the answer is lost
    try:
        answers.append(_post(server.url, dep.sdk_headers, body, batch_id))
    finally:
        dep.proxy.pass_through()
    for _ in range(3):  # the provider resends the same batch
        answers.append(_post(server.url, dep.sdk_headers, body, batch_id))
    stored = dep.sql(f"SELECT count(*) FROM flagapp_sdkevent WHERE targeting_key LIKE '{run}-%'")[
        0
    ][0]
    codes = [a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers]
    FIGURES.add(
        "events: NaN/NUL batch, COMMIT cut, resent x3",
        faults=dep.proxy.faults - faults_before,
        events_sent=len(good) + 2,
        events_stored=stored,
        note=f"answers {codes}",
    )
    last = answers[-1]
    assert isinstance(last, httpx.Response) and last.status_code == 202, codes
    assert last.json()["accepted"] == len(good)
    assert last.json()["rejected"] == 2
    assert sorted(e["index"] for e in last.json()["errors"]) == [20, 49]
    assert 500 not in codes
    assert stored == len(good), f"{stored} rows for {len(good)} valid events ({codes})"


def _sdk_key(base: str, api_headers: dict[str, str], name: str) -> str:
    r = httpx.post(
        base + "/api/v1/sdk-keys/",
        json={"environment": "production", "name": name},
        headers={**api_headers, "X-Change-Reason": "faults"},
        timeout=20,
    )
    assert r.status_code == 201, r.text[:300]
    return str(r.json()["token"])


def test_blast_radius__1000_rigged_exposures_from_one_key__preview_still_shows_real_users(
    shared: Any,
) -> None:
    dep, server = shared
    version = state(server.url, dep.api_headers)["version"]
    r = httpx.patch(
        server.url + STATE_PATH,
        json={
            "enabled": True,
            "fallthrough": {"variant": "off"},
            "rules": [
                {
                    "id": "pro",
                    "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                    "serve": {"variant": "on"},
                }
            ],
        },
        headers={**dep.api_headers, "If-Match": f'"{version}"', "X-Change-Reason": "setup"},
        timeout=20,
    )
    assert r.status_code == 200, r.text[:300]
    # 60 real users on the free plan (each would switch off -> on), from the service's key.
    real = [_exposure(f"real-{i}") for i in range(60)]
    r = httpx.post(
        server.url + "/sdk/v1/events",
        json={"events": real},
        headers={**dep.sdk_headers, "X-Flagapp-Batch-Id": str(uuid.uuid4())},
        timeout=30,
    )
    assert r.status_code == 202, r.text[:300]
    # One holder of another SDK key posts 1,000 crafted "pro" users (already on).
    attacker = {"Authorization": f"Bearer {_sdk_key(server.url, dep.api_headers, 'attacker')}"}
    rigged = [_exposure(f"rigged-{i}", plan="pro", variant="on") for i in range(1000)]
    r = httpx.post(
        server.url + "/sdk/v1/events",
        json={"events": rigged},
        headers={**attacker, "X-Flagapp-Batch-Id": str(uuid.uuid4())},
        timeout=60,
    )
    assert r.status_code == 202, r.text[:300]

    r = httpx.post(
        server.url + "/api/v1/change-requests/preview/",
        json={
            "operation": "update_flag_state",
            "flag": FLAG,
            "environment": "production",
            "params": {"rules": [], "fallthrough": {"variant": "on"}},
        },
        headers=dep.api_headers,
        timeout=60,
    )
    assert r.status_code == 200, r.text[:300]
    radius = r.json()["blast_radius"]
    FIGURES.add(
        "blast radius: 60 real + 1,000 rigged exposures",
        events_sent=1060,
        note=f"preview changed {radius.get('changed')} of {radius.get('sampled')}",
    )
    assert radius["changed"] >= 30, radius
