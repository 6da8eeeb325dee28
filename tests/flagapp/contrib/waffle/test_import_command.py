"""manage.py flagapp_import_waffle: mapping, environments, dry run, idempotency, one
transaction, history."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from waffle.models import Flag as WaffleFlag
from waffle.models import Sample, Switch

from flagapp import services
from flagapp.contrib.waffle.importer import group_segment_key
from flagapp.contrib.waffle.keys import flag_key, key_for, norm_test_name, sample_key, switch_key
from flagapp.models import Environment, Flag, FlagState, Segment, Snapshot

pytestmark = pytest.mark.django_db

Committed = Callable[[], AbstractContextManager[Any]]


def run(*args: str, committed: Committed | None = None) -> str:
    out = io.StringIO()
    argv = ["flagapp_import_waffle", "--reason", "move to flagapp", "--owner", "platform", *args]
    if committed is None:
        call_command(*argv, stdout=out)
    else:
        with committed():
            call_command(*argv, stdout=out)
    return out.getvalue()


@pytest.fixture(autouse=True)
def platform() -> Group:
    return Group.objects.get_or_create(name="platform")[0]


def state(key: str, env: str = "production") -> FlagState:
    return FlagState.objects.get(flag__key=key, environment__key=env)


def rules_of(key: str, env: str = "production") -> list[dict[str, Any]]:
    return [
        {"id": r.rule_id, "when": r.conditions, "serve": r.serve}
        for r in state(key, env).rules.order_by("order")
    ]


# --- keys ---------------------------------------------------------------------------


def test_key_for__valid_names__kept_under_a_prefix_per_waffle_kind() -> None:
    assert flag_key("new_checkout") == "waffle.new_checkout"
    assert switch_key("new_checkout") == "waffle-switch.new_checkout"
    assert sample_key("log-sampling") == "waffle-sample.log-sampling"
    assert flag_key("checkout.v2") == "waffle.checkout.v2"


def test_key_for__other_names__slug_plus_hash_and_never_shared() -> None:
    a, b, c = flag_key("New Checkout"), flag_key("new checkout"), flag_key("new-checkout")
    assert a.startswith("waffle.new-checkout-") and len(a) == len("waffle.new-checkout-") + 8
    assert len({a, b, c}) == 3
    assert flag_key("a.b.c.d").startswith("waffle.a-b-c-d-")  # too many parts for a key
    assert key_for("flag", "ünïcode") == key_for("flag", "ünïcode")
    assert flag_key("!!!").startswith("waffle.x-")


def test_norm_test_name__case_and_separator_insensitive() -> None:
    assert norm_test_name("My_Flag") == norm_test_name("my-flag") == "my-flag"


def test_group_segment_key__valid_slug_kept_else_hashed() -> None:
    assert group_segment_key("beta") == "waffle-group-beta"
    assert group_segment_key("Beta Testers").startswith("waffle-group-beta-testers-")


# --- mapping ------------------------------------------------------------------------


def test_import__every_waffle_field__rules_in_waffle_order(envs: dict[str, Any]) -> None:
    """Testing first (it can say no), then every 'yes' field, then the percentage."""
    beta = Group.objects.create(name="beta")
    user = User.objects.create(username="ann")
    flag = WaffleFlag.objects.create(
        name="new_checkout",
        percent=Decimal("12.5"),
        testing=True,
        languages="de, fr,de",
        authenticated=True,
        staff=True,
        superusers=True,
    )
    flag.users.add(user)
    flag.groups.add(beta)
    run()
    key = "waffle.new_checkout"
    assert [r["id"] for r in rules_of(key)] == [
        "waffle-testing-on",
        "waffle-testing-off",
        "waffle-languages",
        "waffle-authenticated",
        "waffle-staff",
        "waffle-superusers",
        "waffle-users",
        "waffle-groups",
    ]
    rules = {r["id"]: r for r in rules_of(key)}
    assert rules["waffle-testing-off"] == {
        "id": "waffle-testing-off",
        "when": [{"attr": "waffle_testing:new-checkout", "op": "eq", "values": [False]}],
        "serve": {"variant": "off"},
    }
    assert rules["waffle-languages"]["when"] == [
        {"attr": "language", "op": "in", "values": ["de", "fr"]}
    ]
    assert rules["waffle-users"]["when"] == [
        {"attr": "authenticated", "op": "eq", "values": [True]},
        {"attr": "targetingKey", "op": "in", "values": [str(user.pk)]},
    ]
    assert rules["waffle-groups"]["when"] == [{"op": "in_segment", "values": ["waffle-group-beta"]}]
    segment = Segment.objects.get(key="waffle-group-beta")
    assert segment.conditions == [{"attr": "groups", "op": "contains", "values": ["beta"]}]
    st = state(key)
    assert st.enabled is True
    assert st.fallthrough == {
        "rollout": {
            "weights": [{"variant": "on", "weight": 1250}, {"variant": "off", "weight": 8750}]
        }
    }
    flag_row = Flag.objects.get(key=key)
    assert flag_row.flag_type == "experiment"  # a percent split without rollout mode
    assert flag_row.owner.name == "platform"
    assert flag_row.tags == ["waffle"]
    assert "Imported from django-waffle Flag 'new_checkout'" in flag_row.description


def test_import__everyone_yes_no__fallthrough_on_and_kill_switch(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="on_for_all", everyone=True, staff=True, testing=True)
    WaffleFlag.objects.create(name="off_for_all", everyone=False, staff=True, testing=True)
    run()
    on = state("waffle.on_for_all")
    assert (on.enabled, on.fallthrough) == (True, {"variant": "on"})
    assert "waffle-testing-on" not in [r["id"] for r in rules_of("waffle.on_for_all")]
    off = state("waffle.off_for_all")
    assert (off.enabled, off.fallthrough) == (False, {"variant": "off"})
    assert [r["id"] for r in rules_of("waffle.off_for_all")][:2] == [
        "waffle-testing-on",
        "waffle-testing-off",
    ]


def test_import__switches_and_samples__ops_flags(envs: dict[str, Any]) -> None:
    Switch.objects.create(name="maintenance", active=True, note="ops toggle")
    Switch.objects.create(name="dark", active=False)
    Sample.objects.create(name="log sampling", percent=Decimal("2.5"))
    run()
    maint = Flag.objects.get(key="waffle-switch.maintenance")
    assert (maint.flag_type, maint.expires_on) == ("ops", None)
    assert "waffle note: ops toggle" in maint.description
    assert state("waffle-switch.maintenance").fallthrough == {"variant": "on"}
    assert state("waffle-switch.dark").fallthrough == {"variant": "off"}
    sample = Flag.objects.get(key=sample_key("log sampling"))
    assert (sample.kind, sample.flag_type) == ("float", "ops")
    assert list(sample.variants.values_list("key", "value")) == [("percent", 2.5)]
    assert state(sample.key).fallthrough == {"variant": "percent"}


def test_import__release_flags__expire_in_90_days_or_expires_in(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="a")
    run()
    assert Flag.objects.get(key="waffle.a").expires_on == dt.date.today() + dt.timedelta(days=90)
    WaffleFlag.objects.create(name="b")
    run("--expires-in", "10")
    assert Flag.objects.get(key="waffle.b").expires_on == dt.date.today() + dt.timedelta(days=10)
    # existing flags keep theirs
    assert Flag.objects.get(key="waffle.a").expires_on == dt.date.today() + dt.timedelta(days=90)


# --- environments ---------------------------------------------------------------------


def test_import__default__every_existing_environment(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="a", everyone=True)
    run()
    for env in envs:
        assert state("waffle.a", env).enabled is True


def test_import__environment_option__only_those(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="a", everyone=True)
    run("-e", "staging")
    assert state("waffle.a", "staging").enabled is True
    assert state("waffle.a", "production").enabled is False  # created disabled, untouched


def test_import__unknown_environment__refused_naming_it(envs: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="no environment 'prod'"):
        run("-e", "prod")


def test_import__no_environment_at_all__creates_the_sites_environment(settings: Any) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "ENVIRONMENT": "live"}
    WaffleFlag.objects.create(name="a", everyone=True)
    run()
    assert list(Environment.objects.values_list("key", flat=True)) == ["live"]
    assert state("waffle.a", "live").enabled is True


# --- dry run, idempotency, transaction, history -------------------------------------------


def test_import__dry_run__prints_table_and_differences_writes_nothing(
    envs: dict[str, Any],
) -> None:
    WaffleFlag.objects.create(name="pct", percent=Decimal("30"), rollout=True, testing=True)
    Switch.objects.create(name="sw", active=True)
    Sample.objects.create(name="sa", percent=Decimal("10"))
    out = run("--dry-run")
    assert not Flag.objects.exists()
    assert "would import 3 waffle object(s)" in out
    assert "Flag pct" in out and "waffle.pct" in out and "30% sticky rollout" in out
    assert "Switch sw" in out and "waffle-switch.sw" in out and "on for everyone" in out
    assert "Sample sa" in out and "float flag = 10" in out
    assert "semantic differences" in out
    assert "cookie" in out and "sticky" in out  # percent
    assert "rollout mode" in out
    assert "testing mode" in out
    assert "random per call" in out  # sample
    assert "CONTEXT_BUILDER" in out  # testing needs the builder, not configured here
    assert "(would be applied)" in out


def test_import__second_run__changes_nothing(envs: dict[str, Any], committed: Committed) -> None:
    beta = Group.objects.create(name="beta")
    flag = WaffleFlag.objects.create(name="x", percent=Decimal("20"), languages="en")
    flag.groups.add(beta)
    Switch.objects.create(name="s", active=True)
    Sample.objects.create(name="p", percent=Decimal("5"))
    run(committed=committed)
    history = sum(m.history.count() for m in (Flag, FlagState, Segment))
    snapshots = Snapshot.objects.count()
    out = run(committed=committed)
    assert "0 created, 0 changed" in out
    assert sum(m.history.count() for m in (Flag, FlagState, Segment)) == history
    assert Snapshot.objects.count() == snapshots


def test_import__waffle_changed__rerun_syncs_it(envs: dict[str, Any]) -> None:
    flag = WaffleFlag.objects.create(name="x", staff=True)
    Sample.objects.create(name="p", percent=Decimal("5"))
    run()
    flag.staff = False
    flag.everyone = True
    flag.save()
    Sample.objects.filter(name="p").update(percent=Decimal("7.5"))
    out = run()
    assert "changed  state waffle.x@production" in out
    assert state("waffle.x").fallthrough == {"variant": "on"}
    assert list(
        Flag.objects.get(key="waffle-sample.p").variants.values_list("value", flat=True)
    ) == [7.5]


def test_import__existing_flag__keeps_owner_type_and_expiry(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="x")
    run()
    other = Group.objects.create(name="growth")
    flag = Flag.objects.get(key="waffle.x")
    services.update_flag(flag, owner=other, flag_type="permission", actor=None, reason="t")
    run()
    flag.refresh_from_db()
    assert (flag.owner.name, flag.flag_type) == ("growth", "permission")


def test_import__flag_archived_or_deleted_in_flagapp__left_alone(envs: dict[str, Any]) -> None:
    """Re-running the import must not undo an archive or resurrect a deleted key."""
    WaffleFlag.objects.create(name="old", everyone=True)
    WaffleFlag.objects.create(name="gone", everyone=True)
    run()
    services.archive_flag(Flag.objects.get(key="waffle.old"), actor=None, reason="done")
    services.delete_flag(Flag.objects.get(key="waffle.gone"), actor=None, reason="done")
    WaffleFlag.objects.filter(name="old").update(everyone=False)
    out = run()
    assert "archived in flagapp: left as it is" in out
    assert "skipped: deleted in flagapp" in out
    old = Flag.objects.get(key="waffle.old")
    assert old.archived is True
    assert state("waffle.old").enabled is True
    assert not Flag.objects.filter(key="waffle.gone").exists()


def test_import__history__every_row_carries_the_reason(envs: dict[str, Any]) -> None:
    WaffleFlag.objects.create(name="x", staff=True)
    run()
    reasons = set(Flag.history.values_list("history_change_reason", flat=True))
    reasons |= set(FlagState.history.values_list("history_change_reason", flat=True))
    assert reasons == {"move to flagapp"}


def test_import__a_refusal_midway__rolls_everything_back(
    envs: dict[str, Any], settings: Any
) -> None:
    """One transaction: a switch whose key the project's key pattern refuses undoes the flags
    imported before it."""
    settings.FLAGAPP = {**settings.FLAGAPP, "FLAG_KEY_PATTERN": r"^waffle\.[a-z_]+$"}
    WaffleFlag.objects.create(name="a")
    Switch.objects.create(name="b", active=True)
    with pytest.raises(CommandError, match=r"waffle-switch\.b"):
        run()
    assert not Flag.objects.exists()


def test_import__protected_environment__refused_without_change_request(
    envs: dict[str, Any],
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="t")
    WaffleFlag.objects.create(name="a", everyone=True)
    with pytest.raises(CommandError, match="nothing was written"):
        run()
    assert not Flag.objects.exists()
    run("-e", "staging")  # the unprotected ones can go first
    assert state("waffle.a", "staging").enabled is True


def test_import__owner_group_missing__refused() -> None:
    with pytest.raises(CommandError, match="--owner: no group named 'nobody'"):
        call_command("flagapp_import_waffle", "--reason", "r", "--owner", "nobody")


def test_import__waffle_not_installed__refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from flagapp.contrib.waffle import importer

    monkeypatch.setattr(importer, "waffle_installed", lambda: False)
    with pytest.raises(CommandError, match="keep 'waffle' in INSTALLED_APPS"):
        run()


def test_import__two_waffle_names_one_key__refused(
    envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.contrib.waffle import importer

    monkeypatch.setattr(importer, "flag_key", lambda name: "waffle.same")
    WaffleFlag.objects.create(name="a")
    WaffleFlag.objects.create(name="b")
    with pytest.raises(CommandError, match=r"map to the same flagapp key 'waffle\.same'"):
        run()
