"""Rollout and experiment admin: charts inline, transitions through actions with a reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from flagapp import services
from flagapp.models import Experiment
from flagapp.rollouts import controller


@pytest.fixture
def admin_client_(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def test_rollout_admin__actions_with_reason__start_then_rollback_and_chart_shown(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.admin-flow")
    services.update_flag_state(flag, envs["staging"], enabled=True, actor=None, reason="on")
    plan = controller.create_plan(
        flag,
        envs["staging"],
        treatment="on",
        control="off",
        guardrails=[{"metric": "error_rate", "threshold": 0.01}],
    )
    url = "/admin/flagapp/rolloutplan/"
    # First POST shows the reason form; nothing changes yet.
    r = admin_client_.post(url, {"action": "rollout_start", "_selected_action": [plan.pk]})
    assert r.status_code == 200 and b"why?" in r.content
    plan.refresh_from_db()
    assert plan.state == "draft"
    r = admin_client_.post(
        url,
        {
            "action": "rollout_start",
            "_selected_action": [plan.pk],
            "apply": "1",
            "reason": "admin start",
        },
    )
    assert r.status_code == 302
    plan.refresh_from_db()
    assert plan.state == "running"
    assert plan.transitions.get().actor.username == "root"
    r = admin_client_.post(
        url,
        {
            "action": "rollout_resume",
            "_selected_action": [plan.pk],
            "apply": "1",
            "reason": "not paused",
        },
        follow=True,
    )
    assert b"cannot resume" in r.content
    admin_client_.post(
        url,
        {
            "action": "rollout_rollback",
            "_selected_action": [plan.pk],
            "apply": "1",
            "reason": "admin rollback",
        },
    )
    plan.refresh_from_db()
    assert plan.state == "rolled_back"
    page = admin_client_.get(f"{url}{plan.pk}/change/")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"admin rollback" in page.content
    assert b"<script" not in page.content.split(b"<svg")[1].split(b"</svg>")[0]
    assert admin_client_.get(url).status_code == 200


def test_rollout_admin__add_form_bad_steps__error_shown(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.admin-add")
    r = admin_client_.post(
        "/admin/flagapp/rolloutplan/add/",
        {
            "flag": flag.pk,
            "environment": envs["staging"].pk,
            "treatment_variant": "on",
            "control_variant": "off",
            "schedule": "steps",
            "steps": "[100, 50]",
            "min_step_seconds": 60,
            "metric_source": "events",
            "guardrails-TOTAL_FORMS": 0,
            "guardrails-INITIAL_FORMS": 0,
            "transitions-TOTAL_FORMS": 0,
            "transitions-INITIAL_FORMS": 0,
        },
    )
    assert r.status_code == 200 and b"strictly increase" in r.content


def test_experiment_admin__change_page__results_table_srm_and_chart(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    import datetime as dt

    flag = make_flag("shop.admin-exp", flag_type="experiment", expires_on=None)
    exp = Experiment.objects.create(
        flag=flag,
        environment=envs["production"],
        name="e",
        control_variant="off",
        conversion_event="buy",
        started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        expected_weights={"on": 1, "off": 1},
    )
    from flagapp.models import SdkEvent

    at = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    SdkEvent.objects.bulk_create(
        [
            SdkEvent(
                environment=exp.environment,
                kind="exposure",
                key=flag.key,
                flag_key=flag.key,
                variant=v,
                targeting_key=f"{v}{i}",
                timestamp=at,
            )
            for v in ("on", "off")
            for i in range(200)
        ]
        + [
            SdkEvent(
                environment=exp.environment,
                kind="tracking",
                key="buy",
                targeting_key=f"on{i}",
                timestamp=at,
            )
            for i in range(50)
        ]
    )
    page = admin_client_.get(f"/admin/flagapp/experiment/{exp.pk}/change/")
    assert page.status_code == 200
    assert b"Sample ratio as intended" in page.content and b"<svg" in page.content
    assert b"25.00%" in page.content and b"off (control)" in page.content
    # A broken split is shown as such.
    SdkEvent.objects.bulk_create(
        SdkEvent(
            environment=exp.environment,
            kind="exposure",
            key=flag.key,
            flag_key=flag.key,
            variant="off",
            targeting_key=f"extra{i}",
            timestamp=at,
        )
        for i in range(300)
    )
    page = admin_client_.get(f"/admin/flagapp/experiment/{exp.pk}/change/")
    assert b"Sample-ratio mismatch" in page.content


def test_rollout_admin__protected_env_start__asks_for_first_step_request_then_starts(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    from flagapp.governance import change_requests as crs

    env = envs["staging"]
    flag = make_flag("checkout.admin-protected")
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    services.update_environment(env, protected=True, actor=None, reason="protect")
    plan = controller.create_plan(flag, env, treatment="on", control="off")
    url = "/admin/flagapp/rolloutplan/"
    data = {"action": "rollout_start", "_selected_action": [plan.pk], "apply": "1", "reason": "go"}
    r = admin_client_.post(url, data, follow=True)
    assert b"Propose this change as a change request" in r.content
    author = User.objects.create_superuser("author", "a@example.com", "x")
    cr = crs.propose(
        controller.first_step_change(plan),
        author=author,
        reason="roll out",
        compute_blast_radius=False,
    )
    plan.change_request = crs.approve(cr, reviewer=User.objects.get(username="root"))
    plan.save()
    admin_client_.post(url, data)
    plan.refresh_from_db()
    assert plan.state == "running" and plan.approved


def test_rollout_admin__start_below_current_exposure__previewed_refused_flag_unchanged(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """A flag at 10% must not silently drop to the plan's 1% first step."""
    flag = make_flag("checkout.ten-percent")
    ten = {
        "rollout": {
            "weights": [{"variant": "on", "weight": 1000}, {"variant": "off", "weight": 9000}]
        }
    }
    services.update_flag_state(
        flag, envs["staging"], enabled=True, fallthrough=ten, actor=None, reason="10% by hand"
    )
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    assert plan.steps[0] == 100  # 1%
    url = "/admin/flagapp/rolloutplan/"
    ask = admin_client_.post(url, {"action": "rollout_start", "_selected_action": [plan.pk]})
    assert b"already serves 10% of on" in ask.content and b"first step is 1%" in ask.content
    done = admin_client_.post(
        url,
        {"action": "rollout_start", "_selected_action": [plan.pk], "apply": "1", "reason": "go"},
        follow=True,
    )
    assert b"would lower exposure" in done.content
    plan.refresh_from_db()
    assert plan.state == "draft"
    from flagapp.models import FlagState

    assert FlagState.objects.get(flag=flag, environment=envs["staging"]).fallthrough == ten


def test_rollout_admin__start_preview__first_step_and_current_exposure_shown(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.preview")
    services.update_flag_state(flag, envs["staging"], enabled=True, actor=None, reason="on")
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    ask = admin_client_.post(
        "/admin/flagapp/rolloutplan/", {"action": "rollout_start", "_selected_action": [plan.pk]}
    )
    assert b"first step serves 1% of on (now 0% of on)" in ask.content


def _plan_post(flag: Any, env: Any, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "flag": flag.pk,
        "environment": env.pk,
        "treatment_variant": "on",
        "control_variant": "off",
        "schedule": "steps",
        "steps": "[100, 1000, 10000]",
        "min_step_seconds": 60,
        "metric_source": "events",
        "guardrails-TOTAL_FORMS": 1,
        "guardrails-INITIAL_FORMS": 0,
        "guardrails-0-metric": "latency",
        "guardrails-0-event_key": "checkout",
        "guardrails-0-percentile": 150,  # the service refuses: percentile must be in (0, 100]
        "guardrails-0-comparison": "absolute",
        "guardrails-0-threshold": 800,
        "guardrails-0-min_sample": 100,
        "transitions-TOTAL_FORMS": 0,
        "transitions-INITIAL_FORMS": 0,
    }
    data.update(extra)
    return data


#: the service's refusal, on the guardrail row's percentile cell
ROW_ERROR = b'id="id_guardrails-0-percentile_error"><li>must be in (0, 100]</li>'


def test_rollout_admin__add_guardrail_the_service_refuses__error_on_its_row_nothing_saved(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    from flagapp.models import RolloutGuardrail, RolloutPlan

    flag = make_flag("checkout.admin-guard")
    r = admin_client_.post("/admin/flagapp/rolloutplan/add/", _plan_post(flag, envs["staging"]))
    assert r.status_code == 200
    assert ROW_ERROR in r.content
    assert b"Nothing was saved: see the guardrail errors below." in r.content
    assert not RolloutPlan.objects.exists() and not RolloutGuardrail.objects.exists()


def test_rollout_admin__add_valid_plan__created_by_create_plan_with_guardrails(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    from unittest import mock

    from flagapp.models import RolloutPlan
    from flagapp.rollouts import plans

    flag = make_flag("checkout.admin-guard-ok")
    with mock.patch.object(plans, "create_plan", wraps=plans.create_plan) as spy:
        r = admin_client_.post(
            "/admin/flagapp/rolloutplan/add/",
            _plan_post(flag, envs["staging"], **{"guardrails-0-percentile": 99}),
        )
    assert r.status_code == 302, r.content
    assert spy.call_count == 1
    plan = RolloutPlan.objects.get()
    assert plan.steps == [100, 1000, 10000] and plan.created_by.username == "root"
    guard = plan.guardrails.get()
    assert (guard.metric, guard.percentile, guard.threshold) == ("latency", 99.0, 800.0)


def test_rollout_admin__edit_draft_guardrail_the_service_refuses__error_on_row_plan_unchanged(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.admin-guard-edit")
    plan = controller.create_plan(
        flag,
        envs["staging"],
        treatment="on",
        control="off",
        steps=[100, 10000],
        guardrails=[{"metric": "error_rate", "threshold": 0.01}],
    )
    guard = plan.guardrails.get()
    r = admin_client_.post(
        f"/admin/flagapp/rolloutplan/{plan.pk}/change/",
        _plan_post(
            flag,
            envs["staging"],
            **{
                "guardrails-INITIAL_FORMS": 1,
                "guardrails-0-id": guard.pk,
                "guardrails-0-plan": plan.pk,
            },
        ),
    )
    assert r.status_code == 200
    assert ROW_ERROR in r.content
    plan.refresh_from_db()
    assert plan.steps == [100, 10000]
    assert list(plan.guardrails.values_list("metric", flat=True)) == ["error_rate"]


def test_rollout_admin__edit_draft_opened_before_another_edit__conflict_shown_nothing_saved(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """Two people editing one draft: the second save, made over the version the first one
    wrote, is refused (the rule of every versioned resource) instead of overwriting it."""
    from flagapp.rollouts.plans import update_plan

    flag = make_flag("checkout.admin-guard-race")
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    page = admin_client_.get(f"/admin/flagapp/rolloutplan/{plan.pk}/change/")
    assert b'name="version" value="1"' in page.content
    update_plan(plan, treatment="on", control="off", steps=[200, 10000], expected_version=1)
    r = admin_client_.post(
        f"/admin/flagapp/rolloutplan/{plan.pk}/change/",
        _plan_post(
            flag,
            envs["staging"],
            version=1,
            **{"guardrails-TOTAL_FORMS": 0, "steps": "[300, 10000]"},
        ),
    )
    assert r.status_code == 200
    assert b"was changed by someone else since you opened it (now version 2)" in r.content
    plan.refresh_from_db()
    assert (plan.version, plan.steps) == (2, [200, 10000])


def test_rollout_admin__add_unknown_variant__service_error_on_the_field(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    from flagapp.models import RolloutPlan

    flag = make_flag("checkout.admin-variant")
    r = admin_client_.post(
        "/admin/flagapp/rolloutplan/add/",
        _plan_post(
            flag, envs["staging"], treatment_variant="blue", **{"guardrails-TOTAL_FORMS": 0}
        ),
    )
    assert r.status_code == 200
    assert b'id="id_treatment_variant_error"' in r.content
    assert b"&#x27;blue&#x27; is not a variant of checkout.admin-variant" in r.content
    assert not RolloutPlan.objects.exists()


def test_rollout_admin__change_page_title__names_flag_and_environment_keys_not_row_ids(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """Issue 13's raw labels: a plan was titled ``2@2: on (draft)``."""
    flag = make_flag("checkout.admin-title")
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    page = admin_client_.get(f"/admin/flagapp/rolloutplan/{plan.pk}/change/")
    assert b"checkout.admin-title in staging: on (draft)" in page.content
    assert f"{flag.pk}@{envs['staging'].pk}".encode() not in page.content


def test_snapshot_admin__change_page_title__environment_key_not_row_id(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """The same raw label on the snapshot page: ``2 v1`` for staging's first snapshot."""
    from flagapp.publishing import publish

    make_flag("checkout.snapshot-title")
    snap = publish(envs["staging"])
    page = admin_client_.get(f"/admin/flagapp/snapshot/{snap.pk}/change/")
    assert page.status_code == 200
    assert f"<h2>staging v{snap.version}</h2>".encode() in page.content
    assert str(snap) == f"staging v{snap.version}"


def test_change_request_page__first_step_of_a_draft_plan__reviewer_sees_the_whole_rollout(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """Approving a plan's first step approves every later step and the rollback: the
    reviewer is shown the plan (steps, time per step, guardrails), not one percentage."""
    from flagapp.governance import change_requests as crs

    flag = make_flag("checkout.reviewed-rollout")
    plan = controller.create_plan(
        flag, envs["staging"], treatment="on", control="off", steps=[100, 2500, 10000],
        min_step_seconds=7200, guardrails=[{"metric": "error_rate", "threshold": 0.02}],
    )  # fmt: skip
    other = controller.create_plan(
        flag, envs["staging"], treatment="on", control="off", steps=[500, 10000]
    )
    author = User.objects.create_superuser("author", "a@example.com", "x")
    cr = crs.propose(
        controller.first_step_change(plan), author=author, reason="roll out",
        compute_blast_radius=False,
    )  # fmt: skip
    page = admin_client_.get(f"/admin/flagapp/changerequest/{cr.pk}/change/").content.decode()
    assert 'id="cr-rollouts"' in page
    assert f"/admin/flagapp/rolloutplan/{plan.pk}/change/" in page
    assert 'steps <span class="cr-rollout-steps">1% -&gt; 25% -&gt; 100%</span>' in page
    assert "at least 2 h per step" in page and "error_rate" in page
    assert f"/admin/flagapp/rolloutplan/{other.pk}/change/" not in page  # another first step
    plain = crs.propose(
        {"operation": "update_flag_state", "flag": flag.key, "environment": "staging",
         "params": {"enabled": False}},
        author=author, reason="off", compute_blast_radius=False,
    )  # fmt: skip
    page = admin_client_.get(f"/admin/flagapp/changerequest/{plain.pk}/change/").content.decode()
    assert 'id="cr-rollouts"' not in page


def test_rollout_admin__edit_linear_plan_from_the_api__stored_steps_kept(
    admin_client_: Client, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    """A linear list built from 3 steps (the API's ``step_count``) was rebuilt from the
    default 5 by any admin save of the draft, which showed neither the count nor the change."""
    flag = make_flag("checkout.admin-linear")
    plan = controller.create_plan(
        flag, envs["staging"], treatment="on", control="off", schedule="linear",
        step_count=3, first_step=500,
    )  # fmt: skip
    assert plan.steps == [500, 5250, 10000]
    r = admin_client_.post(
        f"/admin/flagapp/rolloutplan/{plan.pk}/change/",
        _plan_post(
            flag, envs["staging"], schedule="linear", steps="[500, 5250, 10000]", version=1,
            min_step_seconds=120, **{"guardrails-TOTAL_FORMS": 0},
        ),
    )  # fmt: skip
    assert r.status_code == 302, r.content
    plan.refresh_from_db()
    assert (plan.schedule, plan.steps, plan.min_step_seconds) == (
        "linear",
        [500, 5250, 10000],
        120,
    )
