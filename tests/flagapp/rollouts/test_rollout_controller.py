"""The rollout controller against the real services, snapshots, engine and stored events."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail

from flagapp import services
from flagapp.exceptions import ApprovalRequired, FlagValidationError
from flagapp.models import RolloutPlan, SdkEvent
from flagapp.rollouts import controller
from flagapp.rollouts.guardrails import VariantSample
from flagapp.rollouts.metrics import MetricQuery, MetricSourceError
from flagapp.rollouts.states import InvalidTransition
from openfeature_provider.engine import evaluate, parse_ruleset

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ERROR_GUARD = {"metric": "error_rate", "threshold": 0.01, "min_sample": 1000}


@pytest.fixture
def flag(make_flag: Callable[..., Any], envs: dict[str, Any], owner_group: Any) -> Any:
    f = make_flag("checkout.new-flow")
    services.update_flag_state(
        f, envs["production"], enabled=True, actor=None, reason="serve off to everyone"
    )
    User.objects.create(username="owner", email="owner@example.com").groups.add(owner_group)
    return f


def _plan(flag: Any, env: Any, **kw: Any) -> Any:
    kw.setdefault("guardrails", [ERROR_GUARD])
    kw.setdefault("min_step_seconds", 600)
    return controller.create_plan(flag, env, treatment="on", control="off", **kw)


def _traffic(
    env: Any, variant: str, users: int, errors: int, at: dt.datetime, prefix: str = "u"
) -> None:
    """``users`` exposures to ``variant`` and ``errors`` error events among those users."""
    rows = [
        SdkEvent(
            environment=env,
            kind=SdkEvent.KIND_EXPOSURE,
            key="checkout.new-flow",
            flag_key="checkout.new-flow",
            variant=variant,
            targeting_key=f"{prefix}{variant}{i}",
            timestamp=at,
        )
        for i in range(users)
    ]
    rows += [
        SdkEvent(
            environment=env,
            kind=SdkEvent.KIND_TRACKING,
            key="error",
            targeting_key=f"{prefix}{variant}{i}",
            timestamp=at + dt.timedelta(seconds=1),
        )
        for i in range(errors)
    ]
    SdkEvent.objects.bulk_create(rows)


def _state(flag: Any, env: Any) -> Any:
    return flag.states.get(environment=env)


def test_create_plan__bad_variants_and_steps__field_errors(flag: Any, envs: dict[str, Any]) -> None:
    with pytest.raises(FlagValidationError) as info:
        controller.create_plan(
            flag,
            envs["production"],
            treatment="nope",
            control="off",
            steps=[100, 50],
            guardrails=[{"metric": "cpu", "threshold": 1}],
        )
    errors = info.value.message_dict
    assert set(errors) == {"treatment_variant", "steps", "guardrails"}


def test_start__enabled_flag__safe_state_stored_first_step_served_and_recorded(
    flag: Any, envs: dict[str, Any], committed: Callable[[], AbstractContextManager[Any]]
) -> None:
    env = envs["production"]
    plan = _plan(flag, env)
    with committed():
        plan = controller.start(plan, actor=None, reason="ship it", now=T0)
    assert plan.state == "running" and plan.current_bps == 100 and plan.step_index == 0
    assert plan.safe_state["fallthrough"] == {"variant": "off"}
    state = _state(flag, env)
    assert state.fallthrough["rollout"]["weights"] == [
        {"variant": "on", "weight": 100},
        {"variant": "off", "weight": 9900},
    ]
    history = state.history.first()
    assert "rollout #" in history.history_change_reason and "1%" in history.history_change_reason
    t = plan.transitions.get()
    assert (t.action, t.from_state, t.to_state, t.to_bps, t.reason) == (
        "start",
        "draft",
        "running",
        100,
        "ship it",
    )
    from flagapp import snapshot

    published = snapshot.latest("production")
    assert published is not None
    ruleset = parse_ruleset(
        published.document if hasattr(published, "document") else published.data
    )
    served = [
        evaluate(ruleset, "checkout.new-flow", {"targetingKey": f"u{i}"}) for i in range(2000)
    ]
    share = sum(r.variant == "on" for r in served) / len(served)
    assert 0.002 < share < 0.03
    assert {r.reason for r in served} == {"SPLIT"}


def test_start__flag_off__refused(make_flag: Callable[..., Any], envs: dict[str, Any]) -> None:
    f = make_flag("checkout.off-flow")
    plan = _plan(f, envs["production"])
    with pytest.raises(FlagValidationError, match="turn it on"):
        controller.start(plan, actor=None, reason="go", now=T0)
    plan.refresh_from_db()
    assert plan.state == "draft" and not plan.transitions.exists()


def _approved_first_step(plan: Any, reviewer_name: str = "reviewer") -> Any:
    """The governance workflow: propose the plan's first step, another person approves."""
    from flagapp.governance import change_requests as crs

    author = User.objects.create_superuser(f"author-{reviewer_name}", "a@example.com", "x")
    reviewer = User.objects.create_superuser(reviewer_name, "r@example.com", "x")
    cr = crs.propose(
        controller.first_step_change(plan),
        author=author,
        reason="roll out",
        compute_blast_radius=False,
    )
    return crs.approve(cr, reviewer=reviewer)


def test_start__protected_env__approval_required_then_approved_first_step_authorises_plan(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="prod is protected")
    env.refresh_from_db()
    plan = _plan(flag, env, min_step_seconds=0, guardrails=[])
    with pytest.raises(ApprovalRequired) as info:
        controller.start(plan, actor=None, reason="go", now=T0)
    assert info.value.change == controller.first_step_change(plan)
    cr = _approved_first_step(plan)
    assert cr.status == "applied"  # approving applied the first step
    # A request approving something else (here: another plan's first step) does not count.
    other = _plan(flag, env, min_step_seconds=0, guardrails=[], steps=[500, 10000])
    with pytest.raises(ApprovalRequired):
        controller.start(other, actor=None, reason="go", now=T0, change_request=cr)
    plan = controller.start(plan, actor=None, reason="go", now=T0, change_request=cr)
    assert plan.approved and plan.change_request_id == cr.pk
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(seconds=1))
    assert outcome.action == "advanced"  # the plan's approval covers its own steps
    plan = controller.rollback(plan, actor=None, reason="manual", now=T0 + dt.timedelta(seconds=2))
    assert _state(flag, env).fallthrough == {"variant": "off"}  # and its rollback


def test_start__pending_change_request__not_enough(flag: Any, envs: dict[str, Any]) -> None:
    from flagapp.governance import change_requests as crs

    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="prod is protected")
    env.refresh_from_db()
    plan = _plan(flag, env)
    author = User.objects.create_superuser("author", "a@example.com", "x")
    cr = crs.propose(
        controller.first_step_change(plan),
        author=author,
        reason="roll out",
        compute_blast_radius=False,
    )
    with pytest.raises(ApprovalRequired):
        controller.start(plan, actor=None, reason="go", now=T0, change_request=cr)


def test_run_check__before_min_step_time__waits_without_step(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    _traffic(env, "on", 2000, 0, T0 + dt.timedelta(seconds=10))
    _traffic(env, "off", 2000, 0, T0 + dt.timedelta(seconds=10))
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(seconds=599))
    assert outcome.action == "waiting" and "minimum step time" in outcome.message
    plan.refresh_from_db()
    assert plan.current_bps == 100


def test_run_check__due_but_below_min_sample__no_step_taken(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    _traffic(env, "on", 999, 0, T0 + dt.timedelta(seconds=10))
    for minutes in (11, 60, 600):  # however long it waits
        outcome = controller.run_check(plan, now=T0 + dt.timedelta(minutes=minutes))
        assert outcome.action == "waiting"
        assert "n=999 < minimum sample 1,000" in outcome.message
    plan.refresh_from_db()
    assert plan.current_bps == 100 and plan.transitions.count() == 1
    assert plan.checks.count() == 3


def test_run_check__due_and_healthy__advances_through_services_with_evidence(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    _traffic(env, "on", 1200, 3, T0 + dt.timedelta(seconds=10))
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(minutes=10))
    assert outcome.action == "advanced"
    plan.refresh_from_db()
    assert (plan.state, plan.current_bps, plan.step_index) == ("running", 1000, 1)
    assert plan.step_started_at == T0 + dt.timedelta(minutes=10)
    t = plan.transitions.last()
    assert t.action == "advance" and t.automatic
    assert t.reason == "1% -> 10%: error_rate 0.2% <= 1.0% (n=1,200)"
    assert _state(flag, env).fallthrough["rollout"]["weights"][0] == {
        "variant": "on",
        "weight": 1000,
    }
    # The next step needs its own minimum sample: old traffic does not count.
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(minutes=21))
    assert outcome.action == "waiting" and "n=0" in outcome.message


def test_run_check__breach__rolled_back_in_same_tick_with_reason_and_email(
    flag: Any, envs: dict[str, Any], committed: Callable[[], AbstractContextManager[Any]]
) -> None:
    env = envs["production"]
    services.update_flag_state(
        flag,
        env,
        rules=[
            {
                "id": "beta",
                "when": [{"attr": "plan", "op": "eq", "values": ["beta"]}],
                "serve": {"variant": "on"},
            }
        ],
        actor=None,
        reason="beta users first",
    )
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    _traffic(env, "on", 4210, 130, T0 + dt.timedelta(seconds=30))
    _traffic(env, "off", 5000, 20, T0 + dt.timedelta(seconds=30))
    with committed():
        outcome = controller.run_check(plan, now=T0 + dt.timedelta(minutes=1))
    assert outcome.action == "rolled_back"
    plan.refresh_from_db()
    assert plan.state == "rolled_back" and plan.current_bps == 0
    t = plan.transitions.last()
    assert t.reason == "automatic rollback: error_rate 3.1% > 1.0% (n=4,210)"
    assert t.automatic and t.from_state == "running" and t.to_state == "rolled_back"
    state = _state(flag, env)
    assert state.fallthrough == {"variant": "off"}
    assert [r.rule_id for r in state.rules.all()] == ["beta"]  # rules restored as they were
    assert "automatic rollback: error_rate 3.1%" in state.history.first().history_change_reason
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@example.com"]
    assert "automatically rolled back" in mail.outbox[0].subject
    assert "error_rate 3.1% > 1.0% (n=4,210)" in mail.outbox[0].body


def test_tick__error_spike_between_ticks__rolled_back_within_one_interval(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    interval = dt.timedelta(seconds=60)
    plan = controller.start(
        _plan(flag, env, min_step_seconds=3600), actor=None, reason="go", now=T0
    )
    _traffic(env, "on", 1500, 2, T0 + dt.timedelta(seconds=5))
    first = controller.tick(now=T0 + interval)
    assert [o.action for o in first] == ["waiting"]
    spike_at = T0 + interval + dt.timedelta(seconds=10)
    _traffic(env, "on", 500, 200, spike_at, prefix="spike")
    second = controller.tick(now=T0 + 2 * interval)
    assert [o.action for o in second] == ["rolled_back"]
    t = plan.transitions.last()
    assert t.at - spike_at <= interval


def test_pause__due_and_healthy__no_step_but_breach_still_rolls_back(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    plan = controller.pause(plan, actor=None, reason="holiday freeze", now=T0)
    _traffic(env, "on", 1500, 0, T0 + dt.timedelta(seconds=5))
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(hours=5))
    assert outcome.action == "waiting" and outcome.message == "paused"
    _traffic(env, "on", 1500, 300, T0 + dt.timedelta(hours=5, seconds=5), prefix="x")
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(hours=5, minutes=1))
    assert outcome.action == "rolled_back"
    plan.refresh_from_db()
    assert [t.action for t in plan.transitions.all()] == ["start", "pause", "rollback"]
    assert plan.transitions.last().from_state == "paused"


def test_resume__paused__running_and_step_clock_restarts(flag: Any, envs: dict[str, Any]) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env, guardrails=[]), actor=None, reason="go", now=T0)
    plan = controller.pause(plan, actor=None, reason="wait", now=T0 + dt.timedelta(minutes=5))
    later = T0 + dt.timedelta(hours=1)
    plan = controller.resume(plan, actor=None, reason="go on", now=later)
    assert plan.state == "running" and plan.step_started_at == later
    assert controller.run_check(plan, now=later + dt.timedelta(minutes=9)).action == "waiting"
    assert controller.run_check(plan, now=later + dt.timedelta(minutes=10)).action == "advanced"


def test_full_run__healthy__completes_at_100_percent_plain_variant(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env, guardrails=[]), actor=None, reason="go", now=T0)
    actions = [
        controller.run_check(plan, now=T0 + dt.timedelta(minutes=10 * i)).action
        for i in range(1, 4)
    ]
    assert actions == ["advanced", "advanced", "completed"]
    plan.refresh_from_db()
    assert plan.state == "completed" and plan.current_bps == 10000
    assert _state(flag, env).fallthrough == {"variant": "on"}
    assert [t.action for t in plan.transitions.all()] == ["start", "advance", "advance", "complete"]
    with pytest.raises(InvalidTransition):
        controller.pause(plan, actor=None, reason="too late")
    assert controller.run_check(plan, now=T0 + dt.timedelta(hours=9)).action == "skipped"


def test_manual_rollback__running__safe_state_restored_and_terminal(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    plan = controller.rollback(plan, actor=None, reason="support tickets", now=T0)
    assert plan.state == "rolled_back"
    assert _state(flag, env).fallthrough == {"variant": "off"}
    t = plan.transitions.last()
    assert (t.reason, t.automatic) == ("support tickets", False)
    for action in (controller.pause, controller.resume, controller.rollback):
        with pytest.raises(InvalidTransition):
            action(plan, actor=None, reason="again")


def test_rollback__draft__invalid_transition(flag: Any, envs: dict[str, Any]) -> None:
    with pytest.raises(InvalidTransition):
        controller.rollback(_plan(flag, envs["production"]), actor=None, reason="x")


def test_start__second_live_plan_same_flag_env__refused(flag: Any, envs: dict[str, Any]) -> None:
    from django.db import IntegrityError, transaction

    env = envs["production"]
    controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    other = _plan(flag, env)
    with pytest.raises(IntegrityError), transaction.atomic():
        controller.start(other, actor=None, reason="go", now=T0)


def test_run_check__fallthrough_edited_outside__plan_paused(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    services.update_flag_state(
        flag, env, fallthrough={"variant": "on"}, actor=None, reason="someone went to 100% by hand"
    )
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(hours=1))
    assert outcome.action == "paused"
    plan.refresh_from_db()
    assert plan.state == "paused" and plan.transitions.last().automatic


class _BrokenSource:
    name = "broken"

    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        raise MetricSourceError("connection refused")


def test_run_check__metric_source_error__no_judgement_recorded(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(hours=1), source=_BrokenSource())
    assert outcome.action == "error" and "connection refused" in outcome.message
    plan.refresh_from_db()
    assert plan.state == "running" and plan.current_bps == 100
    assert plan.last_check["status"] == "error"


def test_monotonic__growing_percentage__users_already_in_keep_variant(
    flag: Any, envs: dict[str, Any], committed: Callable[[], AbstractContextManager[Any]]
) -> None:
    from flagapp import snapshot

    env = envs["production"]
    plan = _plan(flag, env, guardrails=[], steps=[1, 100, 1000, 5000, 10000])
    users = [{"targetingKey": f"user-{i}"} for i in range(5000)]
    served_on: list[set[str]] = []
    with committed():
        plan = controller.start(plan, actor=None, reason="go", now=T0)
    for i in range(5):
        if i:
            with committed():
                controller.run_check(plan, now=T0 + dt.timedelta(minutes=10 * i))
        published = snapshot.latest("production")
        assert published is not None
        ruleset = parse_ruleset(
            published.document if hasattr(published, "document") else published.data
        )
        served_on.append(
            {
                u["targetingKey"]
                for u in users
                if evaluate(ruleset, "checkout.new-flow", u).variant == "on"
            }
        )
    for before, after in itertools.pairwise(served_on):
        assert before <= after
    assert len(served_on[-1]) == len(users)
    assert 0 < len(served_on[2]) < len(served_on[3]) < len(users)
    assert RolloutPlan.objects.get(pk=plan.pk).state == "completed"


def test_kill_switch_during_rollout__plan_paused_and_rollback_keeps_flag_off(
    flag: Any, envs: dict[str, Any]
) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    services.set_flag_enabled(flag, env, False, actor=None, reason="incident: kill it")
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(hours=1))
    assert outcome.action == "paused" and "kill switch" in outcome.message
    plan = controller.rollback(plan, actor=None, reason="clean up", now=T0 + dt.timedelta(hours=2))
    state = _state(flag, env)
    assert state.enabled is False  # the kill switch is not undone by the rollback
    assert state.fallthrough == {"variant": "off"}


class _ExplodingSource:
    name = "exploding"

    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        raise RuntimeError(f"boom for {query.flag_key}")


def test_tick__one_plan_raises__others_still_checked_and_reported(
    flag: Any, make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    env = envs["production"]
    other = make_flag("checkout.other-flow")
    services.update_flag_state(other, env, enabled=True, actor=None, reason="on")
    controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    controller.start(_plan(other, env, guardrails=[]), actor=None, reason="go", now=T0)
    outcomes = controller.tick(now=T0 + dt.timedelta(hours=1), source=_ExplodingSource())
    by_action = sorted(o.action for o in outcomes)
    assert by_action == ["advanced", "error"]  # the plan without guardrails still stepped
    assert any("boom" in o.message for o in outcomes)


def test_create_plan__linear_schedule__steps_generated_and_served(
    flag: Any, envs: dict[str, Any]
) -> None:
    plan = controller.create_plan(
        flag,
        envs["production"],
        treatment="on",
        control="off",
        schedule="linear",
        step_count=4,
        first_step=500,
    )
    assert plan.steps == [500, 3667, 6833, 10000]
    plan = controller.start(plan, actor=None, reason="go", now=T0)
    weights = _state(flag, envs["production"]).fallthrough["rollout"]["weights"]
    assert weights[0] == {"variant": "on", "weight": 500}


def test_start__single_step_100_percent__completed_at_once(flag: Any, envs: dict[str, Any]) -> None:
    plan = _plan(flag, envs["production"], steps=[10000])
    plan = controller.start(plan, actor=None, reason="straight to everyone", now=T0)
    assert plan.state == "completed"
    assert _state(flag, envs["production"]).fallthrough == {"variant": "on"}
    steps = [(t.action, t.from_state, t.to_state) for t in plan.transitions.all()]
    assert steps == [("start", "draft", "running"), ("complete", "running", "completed")]


def test_resume__after_outside_edit_pause__step_reasserted(flag: Any, envs: dict[str, Any]) -> None:
    env = envs["production"]
    plan = controller.start(_plan(flag, env), actor=None, reason="go", now=T0)
    services.update_flag_state(
        flag, env, fallthrough={"variant": "off"}, actor=None, reason="hand edit"
    )
    assert controller.run_check(plan, now=T0 + dt.timedelta(minutes=1)).action == "paused"
    controller.resume(plan, actor=None, reason="carry on", now=T0 + dt.timedelta(minutes=2))
    weights = _state(flag, env).fallthrough["rollout"]["weights"]
    assert weights[0] == {"variant": "on", "weight": 100}
    outcome = controller.run_check(plan, now=T0 + dt.timedelta(minutes=3))
    assert outcome.action == "waiting"


@pytest.mark.parametrize(("window", "expected"), [(None, "waiting"), (600, "rolled_back")])
def test_guardrail_window__late_spike_after_long_healthy_step__caught_only_with_window(
    flag: Any, envs: dict[str, Any], settings: Any, window: int | None, expected: str
) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "ROLLOUT_GUARDRAIL_WINDOW": window}
    env = envs["production"]
    plan = controller.start(
        _plan(flag, env, min_step_seconds=86400), actor=None, reason="go", now=T0
    )
    _traffic(env, "on", 20000, 20, T0 + dt.timedelta(minutes=5))  # hours of healthy traffic
    late = T0 + dt.timedelta(hours=3)
    _traffic(env, "on", 1000, 50, late, prefix="late")  # 5% errors in the last minutes
    outcome = controller.run_check(plan, now=late + dt.timedelta(minutes=1))
    # Whole step: 70 / 21,000 = 0.3% (diluted). Trailing 10 minutes: 50 / 1,000 = 5%.
    assert outcome.action == expected


def test_update_plan__draft_bad_guardrail__field_errors_nothing_changed(
    flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000])
    with pytest.raises(FlagValidationError) as info:
        update_plan(
            plan,
            treatment="on",
            control="off",
            steps=[100, 50],
            guardrails=[{"metric": "latency", "threshold": 800, "percentile": 150}],
        )
    assert set(info.value.message_dict) == {"steps", "guardrails"}
    plan.refresh_from_db()
    assert plan.steps == [100, 10000]
    assert list(plan.guardrails.values_list("metric", flat=True)) == ["error_rate"]


def test_update_plan__draft_valid__fields_and_guardrails_replaced(
    flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000])
    update_plan(
        plan,
        treatment="on",
        control="off",
        steps=[500, 10000],
        min_step_seconds=60,
        guardrails=[{"metric": "latency", "event_key": "checkout", "threshold": 800}],
    )
    plan.refresh_from_db()
    assert (plan.steps, plan.min_step_seconds) == ([500, 10000], 60)
    assert list(plan.guardrails.values_list("metric", flat=True)) == ["latency"]


def test_update_plan__not_a_draft__refused(flag: Any, envs: dict[str, Any]) -> None:
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000])
    controller.start(plan, actor=None, reason="go")
    with pytest.raises(FlagValidationError) as info:
        update_plan(plan, treatment="on", control="off", steps=[500, 10000])
    assert "state" in info.value.message_dict


def test_update_plan__edit__version_moves_on(flag: Any, envs: dict[str, Any]) -> None:
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000])
    assert plan.version == 1
    edited = update_plan(
        plan, treatment="on", control="off", steps=[500, 10000], expected_version=1
    )
    assert edited.version == 2
    plan.refresh_from_db()
    assert (plan.version, plan.steps) == (2, [500, 10000])


def test_update_plan__stale_expected_version__version_conflict_nothing_written(
    flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp.exceptions import VersionConflict
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000])
    update_plan(plan, treatment="on", control="off", steps=[500, 10000], expected_version=1)
    with pytest.raises(VersionConflict) as info:
        update_plan(plan, treatment="on", control="off", steps=[900, 10000], expected_version=1)
    assert (info.value.current_version, info.value.expected_version) == (2, 1)
    plan.refresh_from_db()
    assert (plan.version, plan.steps) == (2, [500, 10000])


def test_update_plan__identical_rewrite_with_stale_version__succeeds_version_kept(
    flag: Any, envs: dict[str, Any]
) -> None:
    """The retry of an edit whose answer was lost asks for what is stored: no 409 for the
    client's own change, and nothing written (the rule of every versioned resource)."""
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], steps=[100, 10000], min_step_seconds=600)
    edit: dict[str, Any] = {
        "treatment": "on",
        "control": "off",
        "steps": [500, 10000],
        "min_step_seconds": 600,
        "guardrails": [ERROR_GUARD],
    }
    update_plan(plan, expected_version=1, **edit)
    again = update_plan(plan, expected_version=1, **edit)
    assert again.version == 2


def test_update_plan__schedule_none__stored_linear_steps_kept(
    flag: Any, envs: dict[str, Any]
) -> None:
    """A linear list was built from a count that is not stored: an edit of something else
    must not rebuild it from the default count."""
    from flagapp.rollouts.plans import update_plan

    plan = _plan(flag, envs["production"], schedule="linear", step_count=3, first_step=500)
    assert plan.steps == [500, 5250, 10000]
    update_plan(plan, treatment="on", control="off", schedule=None, min_step_seconds=60)
    plan.refresh_from_db()
    assert (plan.schedule, plan.steps, plan.min_step_seconds) == ("linear", [500, 5250, 10000], 60)


def test_create_plan__bad_guardrail_rows__each_message_names_row_and_field(
    flag: Any, envs: dict[str, Any]
) -> None:
    with pytest.raises(FlagValidationError) as info:
        controller.create_plan(
            flag,
            envs["production"],
            treatment="on",
            control="off",
            guardrails=[
                ERROR_GUARD,
                {"metric": "latency", "threshold": 800, "percentile": 150, "colour": "red"},
                {"metric": "nope", "threshold": "high"},
            ],
        )
    assert info.value.message_dict == {
        "guardrails": [
            "guardrails[1]: unknown guardrail fields: colour",
            "guardrails[1].percentile: must be in (0, 100]",
            "guardrails[2].metric: must be one of error_rate, latency, event_rate",
            "guardrails[2].threshold: must be a number",
        ]
    }


def _protected(envs: dict[str, Any]) -> Any:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="prod is protected")
    env.refresh_from_db()
    return env


def test_start__plan_edited_after_its_approval__refused_until_approved_again(
    flag: Any, envs: dict[str, Any]
) -> None:
    """The approval of the first step carries every later step and the rollback: a plan
    made faster (or its guardrails looser) after the approval is not what was approved."""
    from flagapp.rollouts.plans import update_plan

    env = _protected(envs)
    plan = _plan(flag, env, steps=[100, 5000, 10000], min_step_seconds=3600)
    cr = _approved_first_step(plan)
    # selecting the request on the plan is not a change of what was approved
    update_plan(
        plan, treatment="on", control="off", steps=[100, 5000, 10000], min_step_seconds=3600,
        guardrails=[ERROR_GUARD], change_request=cr, expected_version=1,
    )  # fmt: skip
    # the same first step, but straight to 100% with no wait
    update_plan(
        plan, treatment="on", control="off", steps=[100, 10000], min_step_seconds=0,
        guardrails=[ERROR_GUARD], change_request=cr, expected_version=2,
    )  # fmt: skip
    plan.refresh_from_db()
    with pytest.raises(ApprovalRequired) as info:
        controller.start(plan, actor=None, reason="go", now=T0, change_request=cr)
    assert f"the plan was edited after change request #{cr.pk} was approved" in str(info.value)
    plan.refresh_from_db()
    assert plan.state == "draft" and not plan.approved
    again = _approved_first_step(plan, reviewer_name="reviewer2")
    plan = controller.start(plan, actor=None, reason="go", now=T0, change_request=again)
    assert plan.approved and plan.steps == [100, 10000]


def test_start__change_request_that_started_another_plan__refused(
    flag: Any, envs: dict[str, Any]
) -> None:
    """One approval, one rollout: after the first plan is rolled back, a second plan with
    the same first step cannot reuse the request."""
    env = _protected(envs)
    first = _plan(flag, env, min_step_seconds=0, guardrails=[])
    second = _plan(flag, env, min_step_seconds=0, guardrails=[])  # both drafts predate it
    cr = _approved_first_step(first)
    first = controller.start(first, actor=None, reason="go", now=T0, change_request=cr)
    controller.rollback(first, actor=None, reason="undo", now=T0 + dt.timedelta(seconds=1))
    with pytest.raises(ApprovalRequired) as info:
        controller.start(second, actor=None, reason="go", now=T0, change_request=cr)
    assert f"change request #{cr.pk} already started rollout plan {first.pk}" in str(info.value)
