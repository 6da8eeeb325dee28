"""flagapp.services: validation, reason, governance, version check, history, publishing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import override_settings

from flagapp import services, snapshot
from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    FlagValidationError,
    KeyReuseError,
    VersionConflict,
)
from flagapp.models import (
    Environment,
    Flag,
    FlagKeyTombstone,
    FlagState,
    Snapshot,
    TargetingRule,
    Variant,
)

pytestmark = pytest.mark.django_db

PRO_RULE = {"when": [{"attr": "plan", "op": "in", "values": ["pro"]}], "serve": {"variant": "on"}}


@dataclass
class ApprovedRequest:
    """The change-request contract of flagapp.policy (the governance model provides it)."""

    flag_id: int | None = None
    environment_id: int | None = None
    is_approved: bool = True


def state_of(flag: Flag, env: Environment) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


# --- create_flag ---------------------------------------------------------------------------


def test_create_flag__boolean_defaults__variants_states_and_history_with_reason(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag("checkout.new-flow", reason="JIRA-1 new checkout")
    assert list(flag.variants.values_list("key", "value")) == [("on", True), ("off", False)]
    states = FlagState.objects.filter(flag=flag)
    assert states.count() == 3
    assert all(not s.enabled and s.fallthrough == {"variant": "off"} for s in states)
    assert flag.history.get().history_change_reason == "JIRA-1 new checkout"
    assert {h.history_change_reason for h in Variant.history.all()} == {"JIRA-1 new checkout"}


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_create_flag__blank_reason__reason_error_and_nothing_written(
    make_flag: Any, reason: Any
) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(reason=reason)
    assert "reason" in info.value.message_dict
    assert not Flag.objects.exists()


@pytest.mark.parametrize("key", ["Checkout.New", "checkout", "checkout..x", "a.b.c.d.e.f", "x y.z"])
def test_create_flag__key_off_pattern__key_error(make_flag: Any, key: str) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(key)
    assert list(info.value.message_dict) == ["key"]


def test_create_flag__custom_pattern__follows_setting(make_flag: Any) -> None:
    with override_settings(FLAGAPP={"FLAG_KEY_PATTERN": r"^[A-Z_]+$"}):
        flag = make_flag("NEW_CHECKOUT")
        with pytest.raises(FlagValidationError):
            make_flag("checkout.new-flow")
    assert flag.key == "NEW_CHECKOUT"


def test_create_flag__existing_key__key_error(make_flag: Any) -> None:
    make_flag("checkout.new-flow")
    with pytest.raises(FlagValidationError) as info:
        make_flag("checkout.new-flow")
    assert "already exists" in info.value.message_dict["key"][0]


def test_create_flag__key_of_deleted_flag__key_reuse_error(make_flag: Any) -> None:
    flag = make_flag("checkout.new-flow")
    services.delete_flag(flag, actor=None, reason="gone")
    with pytest.raises(KeyReuseError) as info:
        make_flag("checkout.new-flow")
    assert "never reused" in info.value.message_dict["key"][0]


def test_create_flag__release_without_expiry__expires_on_error(make_flag: Any) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(expires_on=None)
    assert "expires_on" in info.value.message_dict


@pytest.mark.parametrize("days", [-1, 181])
def test_create_flag__release_expiry_out_of_range__expires_on_error(
    make_flag: Any, days: int
) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(expires_on=dt.date.today() + dt.timedelta(days=days))
    assert "expires_on" in info.value.message_dict


def test_create_flag__ops_flag_without_expiry__created(make_flag: Any) -> None:
    flag = make_flag("ops.db.read-only", flag_type="ops", expires_on=None)
    assert flag.expires_on is None


def test_create_flag__variant_value_of_wrong_kind__variants_error_from_engine(
    make_flag: Any,
) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(kind="string", variants={"a": "x", "b": 3})
    msg = info.value.message_dict["variants"][0]
    assert "string flag cannot have a variant value of type number" in msg


def test_create_flag__several_bad_fields__all_reported(make_flag: Any) -> None:
    with pytest.raises(FlagValidationError) as info:
        make_flag(name="", kind="string", variants=None, risk="extreme", owner="nobody")
    assert {"name", "variants", "risk", "owner"} <= set(info.value.message_dict)


def test_create_flag__owner_by_name_float_values__coerced(
    make_flag: Any, owner_group: Group
) -> None:
    flag = make_flag(
        "pricing.discount.rate",
        kind="float",
        variants={"none": 0, "some": 0.1},
        owner="payments",
    )
    assert flag.owner == owner_group
    assert Variant.objects.get(flag=flag, key="none").value == 0.0
    assert isinstance(Variant.objects.get(flag=flag, key="none").value, float)


# --- update_flag / archive / delete --------------------------------------------------------


def test_update_flag__key_or_kind_change__refused(make_flag: Any) -> None:
    flag = make_flag()
    with pytest.raises(FlagValidationError) as info:
        services.update_flag(flag, key="checkout.other", kind="string", actor=None, reason="x")
    assert set(info.value.message_dict) == {"key", "kind"}


def test_update_flag__name_and_tags__saved_with_history(make_flag: Any) -> None:
    flag = make_flag()
    services.update_flag(flag, name="New checkout", tags=["web", "q3"], actor=None, reason="rename")
    flag.refresh_from_db()
    assert (flag.name, flag.tags) == ("New checkout", ["web", "q3"])
    assert flag.history.first().history_change_reason == "rename"


def test_update_flag__identical_values__no_history_row(make_flag: Any) -> None:
    flag = make_flag()
    services.update_flag(flag, name=flag.name, actor=None, reason="noop")
    assert flag.history.count() == 1


def test_update_flag__lower_risk_of_high_risk_flag__needs_approval(make_flag: Any) -> None:
    flag = make_flag(risk="high")
    with pytest.raises(ApprovalRequired) as info:
        services.update_flag(flag, risk="low", actor=None, reason="less risky")
    assert info.value.change["operation"] == "update_flag"
    flag.refresh_from_db()
    assert flag.risk == "high"
    services.update_flag(
        flag, risk="low", actor=None, reason="approved", change_request=ApprovedRequest(flag.pk)
    )
    flag.refresh_from_db()
    assert flag.risk == "low"


def test_archive_flag__archived__left_out_of_snapshot(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    with committed():
        flag = make_flag()
        make_flag("checkout.other")
    with committed():
        services.archive_flag(flag, actor=None, reason="done")
    doc = snapshot.latest("production").data  # type: ignore[union-attr]
    assert list(doc["flags"]) == ["checkout.other"]


def test_archive_flag__required_by_another_flag__refused(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    base = make_flag("payments.v2")
    dependent = make_flag()
    services.update_flag_state(
        dependent,
        envs["staging"],
        actor=None,
        reason="needs v2",
        prerequisites=[{"flag": "payments.v2", "variants": ["on"]}],
    )
    with pytest.raises(FlagValidationError) as info:
        services.archive_flag(base, actor=None, reason="retire")
    assert "checkout.new-flow@staging" in info.value.message_dict["archived"][0]


def test_delete_flag__deleted__tombstone_and_history_with_reason(
    make_flag: Any, envs: dict[str, Environment], admin_user: User
) -> None:
    flag = make_flag()
    services.update_flag_state(flag, envs["production"], actor=None, reason="r", rules=[PRO_RULE])
    services.delete_flag(flag, actor=admin_user, reason="cleanup after launch")
    tomb = FlagKeyTombstone.objects.get(key="checkout.new-flow")
    assert tomb.deleted_by == admin_user and tomb.reason == "cleanup after launch"
    assert not Flag.objects.exists() and not TargetingRule.objects.exists()
    deletions = [
        h
        for model in (Flag, Variant, FlagState, TargetingRule)
        for h in model.history.filter(history_type="-")
    ]
    assert len(deletions) == 1 + 2 + 3 + 1
    assert {h.history_change_reason for h in deletions} == {"cleanup after launch"}
    assert {h.history_user for h in deletions} == {admin_user}


# --- variants --------------------------------------------------------------------------------


def test_set_variants__variant_used_by_a_rule__variants_error_names_environment(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    services.update_flag_state(flag, envs["staging"], actor=None, reason="r", rules=[PRO_RULE])
    with pytest.raises(FlagValidationError) as info:
        services.set_variants(flag, {"off": False}, actor=None, reason="drop on")
    msg = info.value.message_dict["rules"][0]
    assert msg.startswith("in staging: rules[0].serve.variant")
    assert flag.variants.count() == 2


def test_set_variants__changed_value__versions_move_and_history(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag("ui.banner.text", kind="string", variants={"a": "Hello", "b": "Hi"})
    services.set_variants(
        flag,
        [{"key": "a", "value": "Hello!"}, {"key": "b", "value": "Hi", "description": "x"}],
        actor=None,
        reason="copy edit",
    )
    assert dict(flag.variants.values_list("key", "value")) == {"a": "Hello!", "b": "Hi"}
    assert set(FlagState.objects.filter(flag=flag).values_list("version", flat=True)) == {2}
    assert Variant.history.filter(history_change_reason="copy edit").count() == 2


def test_set_variants__variant_required_by_other_flag__refused(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    base = make_flag("payments.v2")
    dependent = make_flag()
    services.update_flag_state(
        dependent,
        envs["production"],
        actor=None,
        reason="r",
        prerequisites=[{"flag": "payments.v2", "variants": ["on"]}],
    )
    with pytest.raises(FlagValidationError) as info:
        services.set_variants(base, {"yes": True, "off": False}, actor=None, reason="rename")
    assert "requires variant(s) on" in info.value.message_dict["variants"][0]


# --- flag state ------------------------------------------------------------------------------


def test_update_flag_state__stale_version__version_conflict_and_nothing_written(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    env = envs["production"]
    services.update_flag_state(flag, env, actor=None, reason="a", expected_version=1, enabled=True)
    with pytest.raises(VersionConflict) as info:
        services.update_flag_state(
            flag, env, actor=None, reason="b", expected_version=1, rules=[PRO_RULE]
        )
    assert info.value.current_version == 2
    state = state_of(flag, env)
    assert state.version == 2 and state.rules.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        (
            {
                "rules": [
                    {
                        "when": [{"attr": "plan", "op": "like", "values": ["x"]}],
                        "serve": {"variant": "on"},
                    }
                ]
            },
            "rules",
            "rules[0].when[0].op: unknown operator 'like'",
        ),
        (
            {"rules": [{"when": [], "serve": {"variant": "maybe"}}]},
            "rules",
            "rules[0].serve.variant: variant 'maybe' is not defined",
        ),
        (
            {
                "rules": [
                    {
                        "when": [{"attr": "v", "op": "semver_gt", "values": ["1.x"]}],
                        "serve": {"variant": "on"},
                    }
                ]
            },
            "rules",
            "rules[0].when[0].values[0]",
        ),
        (
            {"fallthrough": {"rollout": {"weights": [{"variant": "on", "weight": 0}]}}},
            "fallthrough",
            "weights sum to 0",
        ),
        ({"fallthrough": {"variant": "nope"}}, "fallthrough", "variant 'nope'"),
        (
            {"prerequisites": [{"flag": "no.such-flag", "variants": ["on"]}]},
            "prerequisites",
            "undefined prerequisite flag 'no.such-flag'",
        ),
        (
            {"prerequisites": [{"flag": "checkout.new-flow", "variants": ["on"]}]},
            "prerequisites",
            "cannot require itself",
        ),
        ({"rules": "everyone"}, "rules", "expected a list"),
        ({"enabled": "yes"}, "enabled", "true or false"),
    ],
)
def test_update_flag_state__invalid_input__field_error(
    make_flag: Any,
    envs: dict[str, Environment],
    kwargs: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    flag = make_flag()
    with pytest.raises(FlagValidationError) as info:
        services.update_flag_state(flag, envs["production"], actor=None, reason="x", **kwargs)
    assert fragment in " ".join(info.value.message_dict[field])
    assert state_of(flag, envs["production"]).version == 1


def test_update_flag_state__prerequisite_cycle__prerequisites_error(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    a = make_flag("team.a")
    b = make_flag("team.b")
    env = envs["production"]
    services.update_flag_state(
        a, env, actor=None, reason="x", prerequisites=[{"flag": "team.b", "variants": ["on"]}]
    )
    with pytest.raises(FlagValidationError) as info:
        services.update_flag_state(
            b, env, actor=None, reason="x", prerequisites=[{"flag": "team.a", "variants": ["on"]}]
        )
    assert "cycle" in info.value.message_dict["prerequisites"][0]


def test_update_flag_state__identical_change__no_version_bump(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    env = envs["production"]
    services.update_flag_state(flag, env, actor=None, reason="a", rules=[PRO_RULE])
    services.update_flag_state(flag, env, actor=None, reason="b", rules=[{**PRO_RULE, "id": "r1"}])
    assert state_of(flag, env).version == 2
    assert FlagState.history.filter(history_change_reason="b").count() == 0


def test_update_flag_state__rules_reordered_and_edited__identity_kept_by_id(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    env = envs["production"]
    second = {"id": "beta", "when": [{"op": "exists", "attr": "beta"}], "serve": {"variant": "on"}}
    services.update_flag_state(flag, env, actor=None, reason="a", rules=[PRO_RULE, second])
    first_pk = TargetingRule.objects.get(rule_id="r1").pk
    services.update_flag_state(
        flag,
        env,
        actor=None,
        reason="reorder",
        rules=[second, {**PRO_RULE, "id": "r1", "serve": {"variant": "off"}}],
    )
    rules = list(state_of(flag, env).rules.order_by("order"))
    assert [r.rule_id for r in rules] == ["beta", "r1"]
    assert rules[1].pk == first_pk and rules[1].serve == {"variant": "off"}
    assert TargetingRule.history.filter(history_change_reason="reorder").count() == 2


def test_update_flag_state__protected_environment__approval_required_and_replayable(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="lock prod")
    flag = make_flag()
    with pytest.raises(ApprovalRequired) as info:
        services.update_flag_state(
            flag,
            env,
            actor=None,
            reason="launch",
            expected_version=1,
            enabled=True,
            rules=[PRO_RULE],
        )
    assert state_of(flag, env).version == 1
    change = info.value.change
    assert change["operation"] == "update_flag_state"
    assert (change["flag"], change["environment"]) == ("checkout.new-flow", "production")
    with pytest.raises(ApprovalRequired):
        services.apply_change(
            change,
            actor=None,
            reason="x",
            change_request=ApprovedRequest(flag.pk, env.pk, is_approved=False),
        )
    with pytest.raises(ApprovalRequired):  # approved, but for another environment
        services.apply_change(
            change,
            actor=None,
            reason="x",
            change_request=ApprovedRequest(flag.pk, envs["staging"].pk),
        )
    state = services.apply_change(
        change,
        actor=None,
        reason="approved launch",
        change_request=ApprovedRequest(flag.pk, env.pk),
    )
    assert state.enabled and state.version == 2 and state.rules.count() == 1


def test_set_flag_enabled__kill_switch_in_protected_environment__no_approval_needed(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag(risk="high")
    env = envs["production"]
    services.update_flag_state(
        flag, env, actor=None, reason="on", enabled=True, change_request=ApprovedRequest()
    )
    state = services.set_flag_enabled(flag, env, False, actor=None, reason="incident 42")
    assert not state.enabled and state.version == 3
    with pytest.raises(ApprovalRequired):
        services.set_flag_enabled(flag, env, True, actor=None, reason="back on")


def test_set_flag_enabled__kill_switch_bypass_disabled__approval_required(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag(risk="high")
    env = envs["staging"]
    services.set_flag_enabled(
        flag, env, True, actor=None, reason="on", change_request=ApprovedRequest()
    )
    with (
        override_settings(FLAGAPP={"KILL_SWITCH_BYPASSES_APPROVAL": False}),
        pytest.raises(ApprovalRequired),
    ):
        services.set_flag_enabled(flag, env, False, actor=None, reason="off")
    assert state_of(flag, env).enabled


def test_update_flag_state__archived_flag__refused(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    services.archive_flag(flag, actor=None, reason="done")
    with pytest.raises(FlagValidationError):
        services.set_flag_enabled(flag, envs["staging"], True, actor=None, reason="x")


# --- permissions -------------------------------------------------------------------------------


def _user(*codenames: str) -> User:
    user = User.objects.create_user("u-" + "-".join(codenames or ("none",)), password="x")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # fresh permission cache


def test_services__user_without_permission__change_not_permitted(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    viewer = _user("view_flag", "view_flagstate")
    with pytest.raises(ChangeNotPermitted):
        services.set_flag_enabled(flag, envs["staging"], True, actor=viewer, reason="x")
    with pytest.raises(ChangeNotPermitted):
        make_flag("checkout.other", actor=viewer)
    editor = _user("change_flagstate")
    state = services.set_flag_enabled(flag, envs["staging"], True, actor=editor, reason="x")
    assert state.history.first().history_user == editor


# --- environments ------------------------------------------------------------------------------


def test_create_environment__existing_flags__get_disabled_states(make_flag: Any) -> None:
    flag = make_flag()
    env = services.create_environment(key="qa", name="QA", actor=None, reason="new env")
    state = state_of(flag, env)
    assert not state.enabled and state.fallthrough == {"variant": "off"}


def test_update_environment__remove_protection__needs_approval(
    envs: dict[str, Environment],
) -> None:
    env = envs["production"]
    services.update_environment(env, protected=True, actor=None, reason="lock")
    with pytest.raises(ApprovalRequired):
        services.update_environment(env, protected=False, actor=None, reason="unlock")
    services.update_environment(
        env,
        protected=False,
        actor=None,
        reason="unlock",
        change_request=ApprovedRequest(environment_id=env.pk),
    )
    env.refresh_from_db()
    assert not env.protected


def test_copy_environment__staging_to_production__copied_then_idempotent(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    make_flag("checkout.other")
    services.update_flag_state(
        flag, envs["staging"], actor=None, reason="r", enabled=True, rules=[PRO_RULE]
    )
    changed = services.copy_environment(
        envs["staging"], envs["production"], actor=None, reason="promote"
    )
    assert changed == ["checkout.new-flow"]
    prod = state_of(flag, envs["production"])
    assert prod.enabled and list(prod.rules.values_list("rule_id", "serve")) == [
        ("r1", {"variant": "on"})
    ]
    assert (
        services.copy_environment(envs["staging"], envs["production"], actor=None, reason="again")
        == []
    )


# --- segments ------------------------------------------------------------------------------------


def test_create_segment__bad_condition__conditions_error(db: Any) -> None:
    with pytest.raises(FlagValidationError) as info:
        services.create_segment(
            key="beta-testers",
            name="Beta",
            actor=None,
            reason="x",
            conditions=[{"attr": "email", "op": "matches", "values": ["(unclosed"]}],
        )
    assert "when[0].values[0]" in info.value.message_dict["conditions"][0]


def test_update_segment__cycle__conditions_error(db: Any) -> None:
    b = services.create_segment(key="b", name="B", actor=None, reason="x")
    services.create_segment(
        key="a",
        name="A",
        actor=None,
        reason="x",
        conditions=[{"op": "in_segment", "values": ["b"]}],
    )
    with pytest.raises(FlagValidationError) as info:
        services.update_segment(
            b, conditions=[{"op": "in_segment", "values": ["a"]}], actor=None, reason="x"
        )
    assert "cycle" in " ".join(info.value.messages)


def test_delete_segment__used_by_a_rule__refused(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    seg = services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="x")
    flag = make_flag()
    services.update_flag_state(
        flag,
        envs["staging"],
        actor=None,
        reason="x",
        rules=[{"when": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "on"}}],
    )
    with pytest.raises(FlagValidationError) as info:
        services.delete_segment(seg, actor=None, reason="x")
    assert "checkout.new-flow@staging#r1" in info.value.messages[0]


def test_update_segment__used_in_protected_environment__needs_approval(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    seg = services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="x")
    flag = make_flag()
    services.update_flag_state(
        flag,
        envs["production"],
        actor=None,
        reason="x",
        rules=[{"when": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "on"}}],
    )
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    services.update_segment(seg, name="Beta testers", actor=None, reason="rename only")
    with pytest.raises(ApprovalRequired):
        services.update_segment(seg, include=["u1", "u2"], actor=None, reason="grow")


# --- publishing ------------------------------------------------------------------------------


def test_services__many_writes_in_one_transaction__one_snapshot_per_environment(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    from django.db import transaction

    with committed():
        flag = make_flag()
    before = {e: snapshot.latest(e).version for e in envs}  # type: ignore[union-attr]
    with committed(), transaction.atomic():
        services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="a")
        services.update_flag_state(
            flag, envs["production"], actor=None, reason="b", rules=[PRO_RULE]
        )
        make_flag("checkout.other")
    after = {e: snapshot.latest(e).version for e in envs}  # type: ignore[union-attr]
    assert after == {e: v + 1 for e, v in before.items()}


def test_services__rolled_back_write__nothing_published(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    from django.db import transaction

    with committed():
        flag = make_flag()
    count = Snapshot.objects.count()
    with committed():
        try:
            with transaction.atomic():
                services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="a")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
    assert Snapshot.objects.count() == count
    assert not state_of(flag, envs["production"]).enabled


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_create_flag__same_key_concurrently__one_created_other_key_error(
    owner_group: Group,
) -> None:
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (FLAGAPP_TEST_DB=postgres): concurrent transactions")
    services.create_environment(key="production", name="P", actor=None, reason="x")
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def worker() -> None:
        from django.db import connection as conn

        try:
            barrier.wait(timeout=10)
            services.create_flag(
                key="team.race",
                name="r",
                owner=owner_group,
                flag_type="ops",
                actor=None,
                reason="race",
            )
            outcomes.append("created")
        except FlagValidationError as exc:
            outcomes.append("key" if "key" in exc.message_dict else str(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["created", "key", "key"]
    assert Flag.objects.filter(key="team.race").count() == 1


def test_services__publish_fails_after_commit__write_kept_error_logged_others_published(
    make_flag: Any,
    envs: dict[str, Environment],
    committed: Any,
    monkeypatch: Any,
    caplog: Any,
) -> None:
    from flagapp import publishing

    real_publish = publishing.publish

    def failing_for_staging(env: Environment, **kwargs: Any) -> Any:
        if env.key == "staging":
            raise RuntimeError("injected")
        return real_publish(env, **kwargs)

    monkeypatch.setattr(publishing, "publish", failing_for_staging)
    with caplog.at_level("ERROR", logger="flagapp"), committed():
        make_flag()
    assert Flag.objects.filter(key="checkout.new-flow").exists()
    assert "publishing the staging snapshot failed" in caplog.text
    assert snapshot.latest("staging") is None
    assert snapshot.latest("production") is not None


def test_check_permission__user_model_without_has_perm__refused_not_attribute_error() -> None:
    """A custom user model without PermissionsMixin holds no permission: the services refuse
    the change (ChangeNotPermitted), they do not crash on the missing ``has_perm``."""
    from flagapp.exceptions import ChangeNotPermitted
    from flagapp.services._base import check_permission

    class BareUser:
        is_authenticated = True
        is_active = True

    with pytest.raises(ChangeNotPermitted, match="lacks the permission"):
        check_permission(BareUser(), "flagapp.change_flag")  # type: ignore[arg-type]
