"""Change-request endpoints of the management API, with real users and DRF test clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from flagapp import sampling, services
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState
from flagapp.policy import GrantedApproval
from tests.flagapp import governance_helpers as h

BASE = "/api/v1/change-requests/"
PRO_RULE = {
    "id": "pro",
    "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
    "serve": {"variant": "on"},
}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    sampling.reset()


@pytest.fixture
def prod(envs: dict[str, Environment]) -> Environment:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="lock production")
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=env,
            context={"targetingKey": f"u{i}", "plan": "pro" if i % 2 else "free"},
            recorded_at=timezone.now(),
        )
        for i in range(10)
    )
    return env


@pytest.fixture
def flag(make_flag: Callable[..., Flag], prod: Environment) -> Flag:
    return h.production_baseline(make_flag("checkout.new-flow"), prod)


def _client(username: str, *perms: str) -> tuple[APIClient, User]:
    user = h.user(username, perms=("flagapp.view_changerequest", *perms))
    client = APIClient()
    client.force_authenticate(user)
    return client, user


@pytest.fixture
def alice() -> APIClient:
    return _client("alice", "flagapp.change_flagstate", "flagapp.change_protected_environment")[0]


@pytest.fixture
def bob(db: Any) -> APIClient:
    return _client("bob", "flagapp.approve_changerequest")[0]


def _body(flag: Flag, env: Environment, **params: Any) -> dict[str, Any]:
    version = FlagState.objects.get(flag=flag, environment=env).version
    return {
        "operation": "update_flag_state",
        "flag": flag.key,
        "environment": env.key,
        "params": {**params, "expected_version": version},
        "reason": "launch to pro",
    }


def test_propose__post__201_pending_with_blast_radius(
    flag: Flag, prod: Environment, alice: APIClient
) -> None:
    response = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["status"], data["author"], data["operation"]) == (
        "pending",
        "alice",
        "update_flag_state",
    )
    assert data["blast_radius"]["sampled"] == 10
    assert data["blast_radius"]["changed"] == 5


def test_approve__author__403_and_still_pending(
    flag: Flag, prod: Environment, alice: APIClient
) -> None:
    cr_id = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    response = alice.post(f"{BASE}{cr_id}/approve/", {}, format="json")
    assert response.status_code == 403
    assert ChangeRequest.objects.get(pk=cr_id).status == "pending"


def test_approve__reviewer__200_applied(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    cr_id = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    response = bob.post(f"{BASE}{cr_id}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "applied"
    assert response.json()["reviewer"] == "bob"
    assert FlagState.objects.get(flag=flag, environment=prod).rules.count() == 1
    history = bob.get(f"{BASE}{cr_id}/history/").json()
    assert [(row["user"], row["status"]) for row in history] == [
        ("alice", "pending"),
        ("bob", "approved"),
        ("bob", "applied"),
    ]


def test_approve__stale_base_version__409_refused_request_stays_pending(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    # The admin's rule, now the API's too (one guard: change_requests.check_not_stale):
    # a request whose base moved on says so and cannot be approved until re-proposed.
    first = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    second = alice.post(
        BASE, _body(flag, prod, enabled=False, fallthrough={"variant": "on"}), format="json"
    ).json()["id"]
    assert bob.post(f"{BASE}{first}/approve/", {}, format="json").status_code == 200
    response = bob.post(f"{BASE}{second}/approve/", {}, format="json")
    assert response.status_code == 409
    assert f"change request #{second}" in response.json()["detail"]
    assert response.json()["current_version"] == flag.states.get(environment=prod).version
    assert ChangeRequest.objects.get(pk=second).status == "pending"
    assert bob.get(f"{BASE}{second}/").json()["diff"]["stale"] is True


def test_withdraw__author__200_withdrawn_other_user_403(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    cr_id = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    assert bob.post(f"{BASE}{cr_id}/withdraw/", {}, format="json").status_code == 403
    response = alice.post(f"{BASE}{cr_id}/withdraw/", {"comment": "not now"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "withdrawn"
    assert bob.post(f"{BASE}{cr_id}/approve/", {}, format="json").status_code == 403


def test_applied_request__diff__keeps_before_and_after(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    cr_id = alice.post(
        BASE, _body(flag, prod, fallthrough={"variant": "on"}), format="json"
    ).json()["id"]
    assert bob.post(f"{BASE}{cr_id}/approve/", {}, format="json").json()["status"] == "applied"
    rows = bob.get(f"{BASE}{cr_id}/").json()["diff"]["fields"]
    assert rows == [
        {"field": "fallthrough", "before": {"variant": "off"}, "after": {"variant": "on"}}
    ]


def test_reject__without_comment__400_then_with_comment_200(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    cr_id = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    assert bob.post(f"{BASE}{cr_id}/reject/", {}, format="json").status_code == 400
    response = bob.post(f"{BASE}{cr_id}/reject/", {"comment": "not now"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"


def test_preview__dry_run__blast_radius_and_nothing_written(
    flag: Flag, prod: Environment, alice: APIClient
) -> None:
    body = _body(flag, prod, fallthrough={"variant": "on"})
    body.pop("reason")
    response = alice.post(f"{BASE}preview/", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["blast_radius"]["changed"] == 10
    assert data["summary"].startswith("10 of 10 recent contexts (100.0%)")
    assert FlagState.objects.get(flag=flag, environment=prod).fallthrough == {"variant": "off"}
    assert not ChangeRequest.objects.exists()


def test_preview__invalid_change__400_field_errors(
    flag: Flag, prod: Environment, alice: APIClient
) -> None:
    body = _body(flag, prod, fallthrough={"variant": "missing"})
    response = alice.post(f"{BASE}preview/", body, format="json")
    assert response.status_code == 400


def test_list_and_detail__filters_and_diff(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    a = alice.post(BASE, _body(flag, prod, rules=[PRO_RULE]), format="json").json()["id"]
    b = alice.post(BASE, _body(flag, prod, enabled=False), format="json").json()["id"]
    bob.post(f"{BASE}{a}/reject/", {"comment": "no"}, format="json")
    pending = bob.get(BASE, {"status": "pending"}).json()
    items = pending["results"] if isinstance(pending, dict) else pending
    assert [item["id"] for item in items] == [b]
    detail = bob.get(f"{BASE}{b}/").json()
    assert detail["diff"]["fields"] == [{"field": "enabled", "before": True, "after": False}]


def test_endpoints__anonymous__refused(db: Any) -> None:
    assert APIClient().get(BASE).status_code in (401, 403)


def test_propose__segment_change_in_protected_environment__pending_then_applied(
    flag: Flag, prod: Environment, bob: APIClient
) -> None:
    from flagapp.models import Segment

    seg = services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="x")
    services.update_flag_state(
        flag,
        prod,
        actor=None,
        reason="x",
        change_request=GrantedApproval(),
        rules=[{"when": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "on"}}],
    )
    carol, _ = _client("carol", "flagapp.change_segment")
    body = {
        "operation": "update_segment",
        "segment": "beta",
        "params": {"include": ["u1", "u2"]},
        "reason": "grow the beta",
    }
    response = carol.post(BASE, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["status"], data["flag"], data["blast_radius"]) == ("pending", "", None)
    bad = carol.post(BASE, {**body, "params": {"include": "not a list"}}, format="json")
    assert bad.status_code == 400  # validated by the dry run before anyone reviews it
    assert bob.post(f"{BASE}{data['id']}/approve/", {}, format="json").json()["status"] == (
        "applied"
    )
    assert Segment.objects.get(pk=seg.pk).include == ["u1", "u2"]


def test_detail__first_step_of_a_draft_plan__starts_rollouts_lists_the_plan(
    flag: Flag, prod: Environment, alice: APIClient, bob: APIClient
) -> None:
    from flagapp.rollouts import controller

    plan = controller.create_plan(
        flag, prod, treatment="on", control="off", steps=[100, 10000], min_step_seconds=60,
        guardrails=[{"metric": "error_rate", "threshold": 0.02}],
    )  # fmt: skip
    change = controller.first_step_change(plan)
    cr = alice.post(BASE, {**change, "reason": "roll out"}, format="json")
    assert cr.status_code == 201, cr.content
    detail = bob.get(f"{BASE}{cr.json()['id']}/").json()
    assert detail["starts_rollouts"] == [
        {
            "id": plan.pk, "treatment": "on", "control": "off", "steps": [100, 10000],
            "min_step_seconds": 60, "version": 1,
            "guardrails": [{"metric": "error_rate", "event_key": "error", "threshold": 0.02,
                            "comparison": "absolute", "percentile": 95.0,
                            "min_sample": 1000, "label": "error_rate"}],
        }
    ]  # fmt: skip
    other = alice.post(BASE, _body(flag, prod, enabled=False), format="json").json()["id"]
    assert bob.get(f"{BASE}{other}/").json()["starts_rollouts"] == []
