"""Change requests: the two-person rule, applying with a base-version check, history."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from flagapp import sampling, services
from flagapp.evaluation import evaluate
from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    FlagValidationError,
    VersionConflict,
)
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState, Snapshot
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

PRO_RULE = {
    "id": "pro",
    "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
    "serve": {"variant": "on"},
}


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    sampling.reset()
    reset_flag_cache()
    yield
    reset_flag_cache()


@pytest.fixture
def alice(db: Any) -> User:
    """The author: may edit flag states, may not approve."""
    return h.user(
        "alice",
        perms=(
            "flagapp.change_flagstate",
            "flagapp.change_flag",
            "flagapp.change_protected_environment",
        ),
    )


@pytest.fixture
def bob(db: Any) -> User:
    """The reviewer."""
    return h.user("bob", perms=("flagapp.approve_changerequest",))


@pytest.fixture
def prod(envs: dict[str, Environment]) -> Environment:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="lock production")
    return env


@pytest.fixture
def flag(make_flag: Callable[..., Flag], prod: Environment) -> Flag:
    return h.production_baseline(make_flag("checkout.new-flow"), prod)


def _state(flag: Flag, env: Environment) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


def _sample(env: Environment, n: int = 20) -> None:
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=env,
            context={"targetingKey": f"u{i}", "plan": "pro" if i % 4 == 0 else "free"},
            recorded_at=timezone.now(),
        )
        for i in range(n)
    )


def _propose(flag: Flag, env: Environment, author: User, **params: Any) -> ChangeRequest:
    state = _state(flag, env)
    with pytest.raises(ApprovalRequired) as info:
        services.update_flag_state(
            flag,
            env,
            actor=author,
            reason="launch to pro",
            expected_version=state.version,
            **params,
        )
    return crs.propose_from(info.value, author=author, reason="launch to pro")


def test_propose__protected_environment__pending_request_with_base_version_and_blast_radius(
    flag: Flag, prod: Environment, alice: User
) -> None:
    _sample(prod)
    version = _state(flag, prod).version
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    assert cr.status == "pending" and cr.author == alice
    assert (cr.kind, cr.flag, cr.environment) == ("update_flag_state", flag, prod)
    assert cr.base_version == version
    assert cr.payload["params"]["rules"][0]["when"] == PRO_RULE["when"]
    assert cr.blast_radius["sampled"] == 20
    assert cr.blast_radius["changed"] == 5
    assert cr.blast_radius["share"] == 0.25
    assert cr.blast_radius["examples"][0]["after"] == "on"
    assert _state(flag, prod).version == version  # nothing applied
    assert [r.history_change_reason for r in cr.history.all()] == ["proposed: launch to pro"]


def test_approve__by_another_user__applied_published_and_served(
    flag: Flag,
    prod: Environment,
    alice: User,
    bob: User,
    committed: Callable[[], AbstractContextManager[Any]],
) -> None:
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    with committed():
        cr = crs.approve(cr, reviewer=bob, comment="looks right")
    assert cr.status == "applied" and cr.reviewer == bob and cr.applied_at is not None
    state = _state(flag, prod)
    assert state.rules.get().rule_id == "pro"
    assert Snapshot.objects.filter(environment=prod).exists()
    assert (
        evaluate(
            "checkout.new-flow",
            False,
            {"targetingKey": "u1", "plan": "pro"},
            environment="production",
        ).value
        is True
    )
    assert (
        evaluate(
            "checkout.new-flow",
            True,
            {"targetingKey": "u2", "plan": "free"},
            environment="production",
        ).value
        is False
    )
    # every step is in the history: of the request, and of the state (who and why)
    reasons = [r.history_change_reason for r in cr.history.order_by("history_id")]
    assert reasons == ["proposed: launch to pro", "approved: looks right", "applied"]
    last = state.history.order_by("-history_id").first()
    assert last.history_user == alice
    assert f"change request #{cr.pk}, approved by bob" in last.history_change_reason


def test_approve__by_the_author_even_with_permission__refused(
    flag: Flag, prod: Environment, alice: User
) -> None:
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    h_perm = "flagapp.approve_changerequest"
    from django.contrib.auth.models import Permission

    alice.user_permissions.add(Permission.objects.get(codename=h_perm.split(".")[1]))
    alice = User.objects.get(pk=alice.pk)  # drop the permission cache
    assert alice.has_perm(h_perm)
    with pytest.raises(ChangeNotPermitted, match="author"):
        crs.approve(cr, reviewer=alice)
    assert not crs.can_review(cr, alice)
    cr.refresh_from_db()
    assert cr.status == "pending"


def test_approve__reviewer_without_permission__refused(
    flag: Flag, prod: Environment, alice: User
) -> None:
    carol = h.user("carol", perms=("flagapp.change_flagstate",))
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    with pytest.raises(ChangeNotPermitted, match="approve_changerequest"):
        crs.approve(cr, reviewer=carol)
    with pytest.raises(ChangeNotPermitted):
        crs.reject(cr, reviewer=carol, comment="no")


def test_reject__with_comment__nothing_applied_and_final(
    flag: Flag, prod: Environment, alice: User, bob: User
) -> None:
    version = _state(flag, prod).version
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    with pytest.raises(FlagValidationError):
        crs.reject(cr, reviewer=bob, comment="  ")
    cr = crs.reject(cr, reviewer=bob, comment="not during the sale")
    assert cr.status == "rejected" and cr.review_comment == "not during the sale"
    assert _state(flag, prod).version == version
    with pytest.raises(ChangeNotPermitted, match="rejected"):
        crs.approve(cr, reviewer=bob)


def test_approve__base_version_moved__refused_stays_pending_nothing_lost(
    flag: Flag, prod: Environment, alice: User, bob: User
) -> None:
    first = _propose(flag, prod, alice, rules=[PRO_RULE])
    second = _propose(flag, prod, alice, fallthrough={"variant": "on"})
    assert first.base_version == second.base_version
    assert crs.approve(first, reviewer=bob).status == "applied"
    applied_version = _state(flag, prod).version
    with pytest.raises(VersionConflict, match="stale version"):
        crs.approve(second, reviewer=bob)  # refused before approval: it stays pending
    second.refresh_from_db()
    assert second.status == "pending"
    state = _state(flag, prod)
    assert state.version == applied_version
    assert state.fallthrough == {"variant": "off"}  # the first change stays
    assert second.payload["params"]["fallthrough"] == {"variant": "on"}  # still readable
    assert crs.diff(second)["stale"] is True


def test_kill_switch__protected_environment__direct_with_reason_but_enabling_needs_approval(
    flag: Flag, prod: Environment, alice: User
) -> None:
    state = services.set_flag_enabled(
        flag, prod, False, actor=alice, reason="incident 4711: checkout errors"
    )
    assert state.enabled is False
    last = state.history.order_by("-history_id").first()
    assert (last.history_user, last.history_change_reason) == (
        alice,
        "incident 4711: checkout errors",
    )
    with pytest.raises(ApprovalRequired):
        services.set_flag_enabled(flag, prod, True, actor=alice, reason="fixed")


def test_high_risk_flag__unprotected_environment__needs_a_request(
    make_flag: Callable[..., Flag], envs: dict[str, Environment], alice: User, bob: User
) -> None:
    f = make_flag("payments.capture.v3", risk="high")
    staging = envs["staging"]
    cr = _propose(f, staging, alice, enabled=True)
    assert cr.blast_radius["sampled"] == 0
    assert crs.approve(cr, reviewer=bob).status == "applied"
    assert _state(f, staging).enabled is True


def test_propose__change_the_services_would_refuse__refused_before_review(
    flag: Flag, prod: Environment, alice: User
) -> None:
    change = {
        "operation": "update_flag_state",
        "flag": flag.key,
        "environment": prod.key,
        "params": {"fallthrough": {"variant": "nope"}, "expected_version": 2},
    }
    with pytest.raises(FlagValidationError):
        crs.propose(change, author=alice, reason="typo")
    assert not ChangeRequest.objects.exists()


def test_propose__author_without_edit_permission__refused(
    flag: Flag, prod: Environment, bob: User
) -> None:
    change = {
        "operation": "update_flag_state",
        "flag": flag.key,
        "environment": prod.key,
        "params": {"enabled": False},
    }
    with pytest.raises(ChangeNotPermitted, match="change_flagstate"):
        crs.propose(change, author=bob, reason="x")
    with pytest.raises(FlagValidationError, match="reason"):
        crs.propose(change, author=bob, reason=" ")


def test_preview__dry_run__nothing_written_or_published(
    flag: Flag,
    prod: Environment,
    committed: Callable[[], AbstractContextManager[Any]],
) -> None:
    _sample(prod, 8)
    state = _state(flag, prod)
    history_rows = state.history.count()
    change = {
        "operation": "update_flag_state",
        "flag": flag.key,
        "environment": prod.key,
        "params": {"fallthrough": {"variant": "on"}, "expected_version": state.version},
    }
    with committed():
        radius = crs.preview(change)
    assert radius is not None and (radius.sampled, radius.changed) == (8, 8)
    state.refresh_from_db()
    assert state.fallthrough == {"variant": "off"}
    assert state.history.count() == history_rows
    assert not Snapshot.objects.filter(environment=prod).exists()


def test_preview__archiving_a_flag__every_environment_loses_it(
    flag: Flag, prod: Environment
) -> None:
    radius = crs.preview(
        {"operation": "archive_flag", "flag": flag.key},
        contexts=[{"targetingKey": "u1"}, {"targetingKey": "u2"}],
    )
    # three environments, the same two users in each: two users. Only production served a
    # variant, "off": what a boolean flag's caller default (false) serves: nobody moves.
    assert radius is not None and radius.environment == "*"
    assert (radius.sampled, radius.changed) == (2, 0)
    assert radius.sample["environments"] == ["development", "staging", "production"]


def test_apply__author_lost_permission__stays_approved_then_retry_applies(
    flag: Flag, prod: Environment, alice: User, bob: User
) -> None:
    cr = _propose(flag, prod, alice, rules=[PRO_RULE])
    alice.user_permissions.clear()
    cr = crs.approve(cr, reviewer=bob)
    assert cr.status == "approved"
    assert "lacks the permission" in cr.detail
    alice.user_permissions.add(
        *h.user(
            "tmp", perms=("flagapp.change_flagstate", "flagapp.change_protected_environment")
        ).user_permissions.all()
    )
    cr.author = User.objects.get(pk=alice.pk)
    cr = crs.apply(cr, actor=bob)
    assert cr.status == "applied" and cr.detail == ""
    with pytest.raises(ChangeNotPermitted, match="applied"):
        crs.apply(cr, actor=bob)


def test_diff__pending_request__before_after_per_field(
    flag: Flag, prod: Environment, alice: User
) -> None:
    cr = _propose(flag, prod, alice, rules=[PRO_RULE], fallthrough={"variant": "off"}, enabled=True)
    d = crs.diff(cr)
    assert d["stale"] is False and d["base_version"] == d["current_version"]
    assert d["fields"] == [
        {
            "field": "rules",
            "before": [],
            "after": [
                {
                    "id": "pro",
                    "description": "",
                    "when": PRO_RULE["when"],
                    "serve": {"variant": "on"},
                }
            ],
        }
    ]


def test_pending__oldest_first__only_pending(
    flag: Flag, prod: Environment, alice: User, bob: User
) -> None:
    a = _propose(flag, prod, alice, rules=[PRO_RULE])
    b = _propose(flag, prod, alice, enabled=False, fallthrough={"variant": "on"})
    crs.reject(a, reviewer=bob, comment="no")
    assert list(crs.pending()) == [b]


def test_diff__applied_request__not_reported_stale(
    flag: Flag, prod: Environment, alice: User, bob: User
) -> None:
    cr = crs.approve(_propose(flag, prod, alice, rules=[PRO_RULE]), reviewer=bob)
    assert cr.status == "applied"
    assert crs.diff(cr)["stale"] is False


def test_withdraw__author_and_others__only_the_author_and_never_applied_after(
    db: Any, make_flag: Any, envs: dict[str, Any]
) -> None:
    from django.contrib.auth.models import User

    from flagapp.exceptions import ChangeNotPermitted
    from flagapp.models import ChangeRequest

    flag = make_flag()
    author = User.objects.create_user("author", is_staff=True, is_superuser=True)
    other = User.objects.create_user("other", is_staff=True, is_superuser=True)
    change = {
        "operation": "set_flag_enabled",
        "flag": flag.key,
        "environment": "production",
        "params": {"enabled": True},
    }
    cr = crs.propose(change, author=author, reason="launch")
    with pytest.raises(ChangeNotPermitted):
        crs.withdraw(cr, actor=other)
    cr = crs.withdraw(cr, actor=author, reason="not yet")
    assert cr.status == ChangeRequest.STATUS_WITHDRAWN
    with pytest.raises(ChangeNotPermitted):
        crs.approve(cr, reviewer=other)
    with pytest.raises(ChangeNotPermitted):
        crs.withdraw(cr, actor=author)
