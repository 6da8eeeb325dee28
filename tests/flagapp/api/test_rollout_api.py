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


def _draft(api: APIClient, flag: Any, **extra: Any) -> dict[str, Any]:
    body = {
        "flag": flag.key,
        "environment": "staging",
        "treatment": "on",
        "control": "off",
        "schedule": "linear",
        "step_count": 3,
        "first_step": 500,
        "guardrails": [{"metric": "error_rate", "threshold": 0.02, "min_sample": 500}],
        **extra,
    }
    r = api.post("/api/v1/rollouts/", body, format="json")
    assert r.status_code == 201, r.content
    created: dict[str, Any] = r.json()
    return created


def test_rollout_api__patch_draft_with_if_match__edited_version_moves_rest_kept(
    api: APIClient, flag: Any
) -> None:
    plan = _draft(api, flag, salt="s1")
    assert plan["version"] == 1
    r = api.patch(
        f"/api/v1/rollouts/{plan['id']}/",
        {"min_step_seconds": 120},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["version"], body["min_step_seconds"]) == (2, 120)
    # omitted fields keep their value: the linear list built from step_count 3, the salt,
    # the guardrails
    assert (body["schedule"], body["steps"], body["salt"]) == ("linear", [500, 5250, 10000], "s1")
    assert [g["metric"] for g in body["guardrails"]] == ["error_rate"]
    r = api.patch(
        f"/api/v1/rollouts/{plan['id']}/",
        {"steps": [100, 10000], "guardrails": [], "version": 2},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert (r.json()["schedule"], r.json()["steps"], r.json()["guardrails"]) == (
        "steps",
        [100, 10000],
        [],
    )


def test_rollout_api__patch_without_version__428_nothing_changed(api: APIClient, flag: Any) -> None:
    plan = _draft(api, flag)
    r = api.patch(f"/api/v1/rollouts/{plan['id']}/", {"min_step_seconds": 5}, format="json")
    assert r.status_code == 428
    assert api.get(f"/api/v1/rollouts/{plan['id']}/").json()["min_step_seconds"] == 3600


def test_rollout_api__patch_stale_version__409_nothing_changed(api: APIClient, flag: Any) -> None:
    plan = _draft(api, flag)
    url = f"/api/v1/rollouts/{plan['id']}/"
    ok = api.patch(url, {"min_step_seconds": 5}, format="json", HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200
    r = api.patch(url, {"min_step_seconds": 9}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 409, r.content
    assert api.get(url).json()["min_step_seconds"] == 5


def test_rollout_api__patch_bad_guardrail__400_naming_row_and_field(
    api: APIClient, flag: Any
) -> None:
    plan = _draft(api, flag)
    r = api.patch(
        f"/api/v1/rollouts/{plan['id']}/",
        {"guardrails": [{"metric": "latency", "threshold": 800, "percentile": 150}]},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 400
    assert "guardrails[0].percentile: must be in (0, 100]" in str(r.json())


def test_rollout_api__patch_started_plan__400_on_state(api: APIClient, flag: Any) -> None:
    plan = _draft(api, flag)
    started = api.post(f"/api/v1/rollouts/{plan['id']}/start/", {"reason": "go"}, format="json")
    assert started.status_code == 200, started.content
    r = api.patch(
        f"/api/v1/rollouts/{plan['id']}/",
        {"min_step_seconds": 5},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 400
    assert "state" in r.json()


def test_rollout_api__patch_without_change_permission__403(api: APIClient, flag: Any) -> None:
    from django.contrib.auth.models import Permission

    plan = _draft(api, flag)
    viewer = User.objects.create_user("viewer", "v@example.com", "pw")
    viewer.user_permissions.add(Permission.objects.get(codename="view_rolloutplan"))
    client = APIClient()
    client.force_authenticate(viewer)
    url = f"/api/v1/rollouts/{plan['id']}/"
    assert client.get(url).status_code == 200
    r = client.patch(url, {"min_step_seconds": 5}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 403


def test_rollout_api__put__405(api: APIClient, flag: Any) -> None:
    plan = _draft(api, flag)
    r = api.put(f"/api/v1/rollouts/{plan['id']}/", {}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 405
