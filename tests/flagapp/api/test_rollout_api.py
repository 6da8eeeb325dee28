"""Rollout and experiment endpoints of the management API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from flagapp import services


@pytest.fixture
def api(db: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("admin", "a@example.com", "pw"))
    return client


@pytest.fixture
def flag(make_flag: Callable[..., Any], envs: dict[str, Any]) -> Any:
    f = make_flag("checkout.api-flow")
    services.update_flag_state(f, envs["staging"], enabled=True, actor=None, reason="on")
    return f


def test_rollout_api__create_start_pause_resume_rollback__history_and_409(
    api: APIClient, flag: Any
) -> None:
    r = api.post(
        "/api/v1/rollouts/",
        {
            "flag": flag.key,
            "environment": "staging",
            "treatment": "on",
            "control": "off",
            "guardrails": [{"metric": "error_rate", "threshold": 0.02, "min_sample": 500}],
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert r.json()["steps"] == [100, 1000, 5000, 10000]
    assert r.json()["guardrails"][0]["label"] == "error_rate"
    assert r.json()["allowed_actions"] == ["start"]
    for name in ("start", "pause", "resume", "rollback"):
        r = api.post(f"/api/v1/rollouts/{pk}/{name}/", {"reason": f"api {name}"}, format="json")
        assert r.status_code == 200, (name, r.content)
    body = api.get(f"/api/v1/rollouts/{pk}/").json()
    assert body["state"] == "rolled_back"
    assert [t["action"] for t in body["transitions"]] == ["start", "pause", "resume", "rollback"]
    assert body["transitions"][0]["actor"] == "admin"
    r = api.post(f"/api/v1/rollouts/{pk}/pause/", {"reason": "again"}, format="json")
    assert r.status_code == 409 and "cannot pause" in r.json()["detail"]
    r = api.post(f"/api/v1/rollouts/{pk}/pause/", {}, format="json")
    assert r.status_code == 400
    svg = api.get(f"/api/v1/rollouts/{pk}/timeline.svg/")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert api.get("/api/v1/rollouts/?state=rolled_back").json()["count"] == 1


def test_rollout_api__invalid_plan__400_with_fields(api: APIClient, flag: Any) -> None:
    r = api.post(
        "/api/v1/rollouts/",
        {
            "flag": flag.key,
            "environment": "staging",
            "treatment": "on",
            "control": "on",
            "steps": [100, 50],
        },
        format="json",
    )
    assert r.status_code == 400
    assert "steps" in r.json() or "steps" in str(r.json())


def test_rollout_api__anonymous__401(db: Any) -> None:
    assert APIClient().get("/api/v1/rollouts/").status_code in (401, 403)


def test_experiment_api__create_results_and_sample_size(
    api: APIClient, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    exp_flag = make_flag("shop.api-exp", flag_type="experiment", expires_on=None)
    r = api.post(
        "/api/v1/experiments/",
        {
            "flag": exp_flag.key,
            "environment": "production",
            "name": "x",
            "control_variant": "off",
            "conversion_event": "purchase",
            "started_at": "2026-01-01T00:00:00Z",
            "expected_weights": {"on": 1, "off": 1},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    results = api.get(f"/api/v1/experiments/{r.json()['id']}/results/").json()
    assert [v["variant"] for v in results["variants"]] == ["off", "on"]
    assert results["sample_ratio_mismatch"]["mismatch"] is False
    assert api.get(f"/api/v1/experiments/{r.json()['id']}/results.svg/").status_code == 200
    release = make_flag("shop.not-exp")
    r = api.post(
        "/api/v1/experiments/",
        {
            "flag": release.key,
            "environment": "production",
            "name": "y",
            "control_variant": "off",
            "conversion_event": "p",
            "started_at": "2026-01-01T00:00:00Z",
        },
        format="json",
    )
    assert r.status_code == 400
    r = api.post(
        "/api/v1/experiments/sample-size/",
        {"baseline_rate": 0.1, "minimum_detectable_effect": 0.02},
        format="json",
    )
    assert r.status_code == 200 and r.json()["sample_size_per_variant"] == 3841


@pytest.mark.parametrize(
    "body",
    [
        {"guardrails": [{"metric": ["x"], "threshold": 1}]},
        {"guardrails": [{"metric": "latency", "threshold": 1, "event_key": 5}]},
        {"guardrails": [{"metric": "error_rate", "threshold": "high"}]},
        {"guardrails": [{"metric": "error_rate", "threshold": 1, "percentile": True}]},
        {"guardrails": [{"metric": "error_rate", "threshold": 1, "comparison": {}}]},
        {"steps": [100, 100]},
        {"schedule": "cubic"},
        {"treatment": "missing"},
        {"flag": "no.such-flag"},
    ],
)
def test_rollout_api__ill_typed_bodies__4xx_never_5xx(
    api: APIClient, flag: Any, body: dict[str, Any]
) -> None:
    base = {"flag": flag.key, "environment": "staging", "treatment": "on", "control": "off"}
    r = api.post("/api/v1/rollouts/", {**base, **body}, format="json")
    assert r.status_code in (400, 404), r.content


@pytest.mark.parametrize(
    "extra",
    [
        {"expected_weights": {"on": "x"}},
        {"expected_weights": [1, 2]},
        {"srm_threshold": 2.0},
        {"confidence": 1.0},
        {"control_variant": "nope"},
    ],
)
def test_experiment_api__ill_typed_bodies__400(
    api: APIClient, make_flag: Callable[..., Any], envs: dict[str, Any], extra: dict[str, Any]
) -> None:
    exp_flag = make_flag("shop.api-bad", flag_type="experiment", expires_on=None)
    body = {
        "flag": exp_flag.key,
        "environment": "production",
        "name": "x",
        "control_variant": "off",
        "conversion_event": "buy",
        "started_at": "2026-01-01T00:00:00Z",
        **extra,
    }
    assert api.post("/api/v1/experiments/", body, format="json").status_code == 400


def test_rollout_api__protected_env__202_with_first_step_then_start_with_approved_request(
    api: APIClient, flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp.governance import change_requests as crs
    from flagapp.rollouts import controller

    env = envs["staging"]
    services.update_environment(env, protected=True, actor=None, reason="protect")
    r = api.post(
        "/api/v1/rollouts/",
        {"flag": flag.key, "environment": "staging", "treatment": "on", "control": "off"},
        format="json",
    )
    pk = r.json()["id"]
    r = api.post(f"/api/v1/rollouts/{pk}/start/", {"reason": "go"}, format="json")
    assert r.status_code == 202
    from flagapp.models import RolloutPlan

    plan = RolloutPlan.objects.get(pk=pk)
    assert r.json()["change"] == controller.first_step_change(plan)
    author = User.objects.create_superuser("author", "x@example.com", "x")
    reviewer = User.objects.create_superuser("reviewer", "y@example.com", "x")
    cr = crs.propose(
        r.json()["change"], author=author, reason="roll out", compute_blast_radius=False
    )
    cr = crs.approve(cr, reviewer=reviewer)
    r = api.post(
        f"/api/v1/rollouts/{pk}/start/", {"reason": "go", "change_request": cr.pk}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "running"
    assert r.json()["safe_state"]["fallthrough"] == {"variant": "off"}
