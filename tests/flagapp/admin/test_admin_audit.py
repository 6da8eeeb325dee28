"""Readable history: the flag timeline in words, restore through the services, the audit
log with filters and streamed CSV / JSON-lines exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from flagapp import services
from flagapp.admin.timeline import state_versions
from flagapp.admin.wording import percent, serve_text
from flagapp.models import ChangeRequest, Environment, Flag, FlagState
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db

Committed = Callable[[], AbstractContextManager[Any]]


def _split(on: int) -> dict[str, Any]:
    return {"rollout": {"weights": [{"variant": "on", "weight": on},
                                    {"variant": "off", "weight": 10_000 - on}]}}  # fmt: skip


PROS = {"id": "pros", "description": "Pro plans", "when": [
    {"attr": "plan", "op": "in", "values": ["pro"]}], "serve": {"variant": "on"}}  # fmt: skip
BETA = {"id": "beta", "when": [{"op": "in_segment", "values": ["beta"]}],
        "serve": {"variant": "on"}}  # fmt: skip


@pytest.fixture
def alice(db: Any) -> User:
    return h.user(
        "alice",
        perms=("flagapp.view_flag", "flagapp.add_flag", "flagapp.change_flag",
               "flagapp.view_flagstate", "flagapp.change_flagstate"),
    )  # fmt: skip


@pytest.fixture
def story(make_flag: Any, envs: dict[str, Environment], alice: User, committed: Committed) -> Flag:
    """A flag with a history in staging: rollout 10% -> 50%, rules added, changed, moved and
    removed, a prerequisite, the kill switch; a variant added; fields edited."""
    staging = envs["staging"]
    with committed():
        services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
        make_flag("payments.v2")
        flag = make_flag("checkout.new-flow", actor=alice, reason="new checkout")
        step = [
            ({"enabled": True, "fallthrough": _split(1000)}, "start at 10%"),
            ({"fallthrough": _split(5000)}, "looks good: 50%"),
            ({"rules": [PROS]}, "pros first"),
            ({"rules": [PROS, BETA]}, "and beta"),
            ({"rules": [BETA, {**PROS, "when": [{"attr": "plan", "op": "in",
                                                 "values": ["pro", "team"]}]}]},
             "teams too, beta first"),
            ({"prerequisites": [{"flag": "payments.v2", "variants": ["on"]}]}, "needs payments"),
            ({"rules": [BETA]}, "drop pros"),
            ({"enabled": False}, "incident <b>#42</b>"),
        ]  # fmt: skip
        for params, reason in step:
            services.update_flag_state(flag, staging, actor=alice, reason=reason, **params)
        services.set_variants(
            flag,
            [{"key": "on", "value": True}, {"key": "off", "value": False}],
            actor=alice,
            reason="same variants",
        )
        services.update_flag(flag, name="New checkout flow", description="v2", actor=alice,
                             reason="rename")  # fmt: skip
    return flag


def test_percent_and_serve_text__weights__percent_with_two_decimals() -> None:
    assert percent(2500, 10_000) == "25%"
    assert percent(1, 3) == "33.33%"
    assert percent(0, 0) == "0%"
    assert serve_text(_split(1000)) == "on 10% · off 90%"
    assert serve_text({"variant": "on"}) == "on"
    assert serve_text(None) == "the caller's default"
    by = {"rollout": {"weights": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 1}],
                      "bucket_by": "company.id", "hash": "flagd-cbor"}}  # fmt: skip
    assert serve_text(by) == "a 50% · b 50% (by company.id) (hash flagd-cbor)"


def test_timeline__state_changes__described_in_words_with_who_when_why(
    admin_client: Client, story: Flag
) -> None:
    response = admin_client.get(reverse("admin:flagapp_flag_timeline", args=[story.pk]))
    assert response.status_code == 200
    lines = [line for e in response.context["entries"] for line in e["lines"]]
    for expected in (
        "fallthrough: on 10% · off 90% → on 50% · off 50%",
        "rule pros added at position 1: plan in pro → on (“Pro plans”)",
        "rule beta added at position 2: in_segment beta → on",
        "rule pros conditions: plan in pro → plan in pro, team",
        "rule beta moved from position 2 to 1",
        "prerequisite added: payments.v2 is on",
        "rule pros removed (was: plan in pro, team → on (“Pro plans”))",
        "turned off (everyone gets the default)",
        "name: checkout.new-flow → New checkout flow; description: — → v2",
    ):
        assert expected in lines, (expected, lines)
    # the move is reported for beta only: pros changed place because beta moved up
    assert not any("rule pros moved" in line for line in lines)
    page = response.content.decode()
    assert "{'" not in page and "':" not in page  # no Python dicts
    assert "incident &lt;b&gt;#42&lt;/b&gt;" in page and "<b>#42</b>" not in page
    assert "alice" in page and "looks good: 50%" in page
    newest = response.context["entries"][0]
    assert newest["lines"] == ["name: checkout.new-flow → New checkout flow; description: — → v2"]


def test_timeline__environment_filter__only_that_environment(
    admin_client: Client, story: Flag, envs: dict[str, Environment]
) -> None:
    url = reverse("admin:flagapp_flag_timeline", args=[story.pk])
    entries = admin_client.get(url, {"environment": "production"}).context["entries"]
    assert {e["where"] for e in entries} == {"production"}
    assert [e["lines"] for e in entries] == [["created (off)", "fallthrough: off"]]


def test_timeline__view_only_flags__state_entries_hidden(client: Client, story: Flag) -> None:
    client.force_login(h.user("reader", perms=("flagapp.view_flag",)))
    response = client.get(reverse("admin:flagapp_flag_timeline", args=[story.pk]))
    assert response.status_code == 200
    assert {e["kind"] for e in response.context["entries"]} == {"flag"}
    client.force_login(h.user("nobody"))
    assert client.get(reverse("admin:flagapp_flag_timeline", args=[story.pk])).status_code == 403


def _version(flag: Flag, env: Environment, n: int) -> Any:
    return next(v for v in state_versions(flag.pk, env.pk) if v.version == n)


def test_restore__unprotected__state_back_as_version_n_new_version_reason(
    client: Client, story: Flag, envs: dict[str, Environment], alice: User, committed: Committed
) -> None:
    staging = envs["staging"]
    target = _version(story, staging, 6)  # BETA + PROS(pro, team), 50%, on
    url = reverse("admin:flagapp_flag_restore", args=[story.pk, target.history_id])
    client.force_login(alice)
    page = client.get(url)
    assert page.status_code == 200
    assert "turned on" in page.context["lines"]
    assert (
        "rule pros added at position 2: plan in pro, team → on (“Pro plans”)"
        in (page.context["lines"])
    )
    before = FlagState.objects.get(flag=story, environment=staging).version
    assert client.post(url, {"reason": ""}).status_code == 200  # reason required
    with committed():
        response = client.post(url, {"reason": "the incident is over"})
    assert response.status_code == 302
    state = FlagState.objects.get(flag=story, environment=staging)
    assert state.version == before + 1
    assert state.enabled is True and state.fallthrough == _split(5000)
    assert [r.rule_id for r in state.rules.order_by("order")] == ["beta", "pros"]
    assert state.rules.get(rule_id="pros").conditions[0]["values"] == ["pro", "team"]
    latest = state.history.first()
    assert latest.history_change_reason == "restore of version 6: the incident is over"
    assert latest.history_user == alice
    assert _version(story, staging, state.version).as_params() == target.as_params()
    # the published snapshot serves it
    from flagapp.publishing import latest as latest_snapshot

    snap = latest_snapshot("staging")
    assert snap is not None and snap.data["flags"]["checkout.new-flow"]["enabled"] is True


def test_restore__protected_environment__change_request_nothing_changed(
    client: Client, story: Flag, envs: dict[str, Environment], committed: Committed
) -> None:
    staging = envs["staging"]
    with committed():
        services.update_environment(staging, protected=True, actor=None, reason="lock")
    author = h.user(
        "carol",
        perms=("flagapp.view_flag", "flagapp.view_flagstate", "flagapp.change_flagstate",
               "flagapp.change_protected_environment"),
    )  # fmt: skip
    client.force_login(author)
    target = _version(story, staging, 2)
    state = FlagState.objects.get(flag=story, environment=staging)
    url = reverse("admin:flagapp_flag_restore", args=[story.pk, target.history_id])
    response = client.post(url, {"reason": "back to 10%"})
    assert response.status_code == 302
    assert FlagState.objects.get(pk=state.pk).version == state.version
    cr = ChangeRequest.objects.get()
    assert cr.status == "pending" and cr.author == author
    assert cr.reason == "restore of version 2: back to 10%"
    assert cr.payload["params"]["fallthrough"] == _split(1000)


def test_restore__permissions__change_flagstate_needed(
    client: Client, story: Flag, envs: dict[str, Environment]
) -> None:
    target = _version(story, envs["staging"], 2)
    url = reverse("admin:flagapp_flag_restore", args=[story.pk, target.history_id])
    client.force_login(h.user("reader", perms=("flagapp.view_flag", "flagapp.view_flagstate")))
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403
    page = client.get(reverse("admin:flagapp_flag_timeline", args=[story.pk])).content.decode()
    assert "Restore this version" not in page


def test_restore__history_of_another_flag__refused(
    admin_client: Client, story: Flag, make_flag: Any, envs: dict[str, Environment]
) -> None:
    other = Flag.objects.get(key="payments.v2")
    target = _version(story, envs["staging"], 2)
    url = reverse("admin:flagapp_flag_restore", args=[other.pk, target.history_id])
    assert admin_client.post(url, {"reason": "x"}).status_code == 403


def test_restore__current_version__no_restore_button(admin_client: Client, story: Flag) -> None:
    entries = admin_client.get(
        reverse("admin:flagapp_flag_timeline", args=[story.pk]), {"environment": "staging"}
    ).context["entries"]
    assert "restore" not in entries[0] and all("restore" in e for e in entries[1:])


# --- the audit log ------------------------------------------------------------------------------

AUDIT = "/admin/flagapp/flag/audit-log/"


def test_audit_log__filters__flag_environment_user_date(
    admin_client: Client, story: Flag, alice: User
) -> None:
    rows = admin_client.get(AUDIT, {"flag": "checkout.new-flow"}).context["rows"]
    assert rows and {r["flag"] for r in rows} == {"checkout.new-flow"}
    assert {r["object"] for r in rows} >= {"flag", "variant", "state", "rule"}
    rows = admin_client.get(AUDIT, {"environment": "staging", "user": "alice"}).context["rows"]
    assert rows and {(r["environment"], r["user"]) for r in rows} == {("staging", "alice")}
    state_rows = [r for r in rows if r["object"] == "state"]
    assert "version 3: on, fallthrough on 50% · off 50%" in [r["details"] for r in state_rows]
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert admin_client.get(AUDIT, {"since": tomorrow}).context["rows"] == []
    everything = admin_client.get(AUDIT).context["rows"]
    assert any(r["object"] == "segment beta" for r in everything)
    assert [r["when"] for r in everything] == sorted((r["when"] for r in everything), reverse=True)
    response = admin_client.get(AUDIT, {"since": tomorrow, "until": "2020-01-01"})
    assert "until" in response.context["form"].errors
    assert admin_client.get(AUDIT, {"since": "not a date"}).context["rows"] == []


def test_audit_log__paging__older_link(admin_client: Client, story: Flag) -> None:
    from flagapp.admin import audit

    total = len(list(audit.audit_rows(audit.AuditFilters())))
    assert total > 20
    old = audit.PAGE_SIZE
    audit.PAGE_SIZE = 10
    try:
        first = admin_client.get(AUDIT)
        second = admin_client.get(AUDIT, {"page": 2})
    finally:
        audit.PAGE_SIZE = old
    assert len(first.context["rows"]) == 10 and first.context["more"]
    assert first.context["rows"][-1]["when"] >= second.context["rows"][0]["when"]


def test_audit_log__csv_export__streamed_all_rows_formula_escaped(
    admin_client: Client, story: Flag, alice: User, envs: dict[str, Environment]
) -> None:
    services.update_flag_state(
        story, envs["development"], actor=alice, reason='=HYPERLINK("http://x")', enabled=True
    )
    response = admin_client.get(AUDIT, {"export": "csv", "flag": "checkout.new-flow"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["when", "user", "object", "flag", "environment", "change",
                             "reason", "details"]  # fmt: skip
    assert len(rows) == len(list(_audit_rows(flag="checkout.new-flow")))
    assert '\'=HYPERLINK("http://x")' in [r["reason"] for r in rows]


def _audit_rows(**kw: Any) -> Any:
    from flagapp.admin import audit

    return audit.audit_rows(audit.AuditFilters(**kw))


def test_audit_log__jsonl_export__one_object_per_row(admin_client: Client, story: Flag) -> None:
    response = admin_client.get(AUDIT, {"export": "jsonl", "environment": "staging"})
    assert isinstance(response, StreamingHttpResponse)
    lines = b"".join(response.streaming_content).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows and {r["environment"] for r in rows} == {"staging"}
    assert "incident <b>#42</b>" in {r["reason"] for r in rows}
    dt.datetime.fromisoformat(rows[0]["when"])


def test_audit_log__html__escaped(admin_client: Client, story: Flag) -> None:
    page = admin_client.get(AUDIT).content.decode()
    assert "incident &lt;b&gt;#42&lt;/b&gt;" in page and "<b>#42</b>" not in page


def test_audit_log__permissions__flag_and_state_view_needed(client: Client, story: Flag) -> None:
    client.force_login(h.user("reader", perms=("flagapp.view_flag",)))
    assert client.get(AUDIT).status_code == 403
    assert client.get(AUDIT, {"export": "csv"}).status_code == 403
    client.force_login(h.user("auditor", perms=("flagapp.view_flag", "flagapp.view_flagstate")))
    assert client.get(AUDIT).status_code == 200
    assert Client().get(AUDIT).status_code == 302


def test_describe_state_change__rotation__only_the_rotated_rule_moved() -> None:
    from flagapp.admin.timeline import StateVersion, describe_state_change

    def version(ids: list[str]) -> StateVersion:
        return StateVersion(
            history_id=1, state_id=1, environment_id=1, version=1, when=dt.datetime.now(),
            user=None, reason="", change="changed", enabled=True, fallthrough=None,
            prerequisites=[], rules=[{"id": i, "when": [], "serve": {"variant": "on"}}
                                     for i in ids],
        )  # fmt: skip

    assert describe_state_change(version(["a", "b", "c"]), version(["b", "c", "a"])) == [
        "rule a moved from position 1 to 3"
    ]
    assert describe_state_change(version(["a", "b"]), version(["new", "a", "b"])) == [
        "rule new added at position 1: everyone → on"
    ]
    assert describe_state_change(version(["a"]), version(["a"])) == ["saved without changes"]


def test_audit_log__deleted_flag__rows_still_named_and_filterable(
    admin_client: Client, story: Flag, committed: Committed
) -> None:
    with committed():
        services.delete_flag(story, actor=None, reason="cleanup")
    rows = admin_client.get(AUDIT, {"flag": "checkout.new-flow"}).context["rows"]
    assert rows[0]["reason"] == "cleanup"
    assert {r["flag"] for r in rows} == {"checkout.new-flow"}
    assert {"rule", "state", "variant", "flag"} <= {r["object"] for r in rows}
    staging = [r for r in rows if r["object"] == "rule" and r["environment"] == "staging"]
    assert staging and {r["change"] for r in staging} >= {"created", "deleted"}


def test_restore__current_version__refused_nothing_written(
    admin_client: Client, story: Flag, envs: dict[str, Environment]
) -> None:
    staging = envs["staging"]
    current = state_versions(story.pk, staging.pk)[-1]
    url = reverse("admin:flagapp_flag_restore", args=[story.pk, current.history_id])
    history = FlagState.history.count()
    assert "is the current version" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"reason": "again"})
    assert response.status_code == 200
    assert "is the current version" in response.content.decode()
    assert FlagState.history.count() == history


@pytest.fixture
def keys(envs: dict[str, Environment], alice: User) -> dict[str, Any]:
    """A staging key created and revoked by alice, a production key created by the system."""
    from django.contrib.auth.models import Permission

    from flagapp.services import sdk_keys

    alice.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="flagapp", codename__in=("add_sdkkey", "change_sdkkey")
        )
    )
    alice = User.objects.get(pk=alice.pk)  # permissions are cached per instance
    web, web_token = sdk_keys.create_sdk_key(
        envs["staging"], name="storefront", scope="client", actor=alice, reason="web launch"
    )
    sdk_keys.revoke_sdk_key(web, actor=alice, reason="token pasted in a ticket")
    api, api_token = sdk_keys.create_sdk_key(
        envs["production"], name="checkout", actor=None, reason="checkout service"
    )
    return {"web": web, "api": api, "tokens": [web_token, api_token]}


def test_audit_log__sdk_keys__created_and_revoked_with_who_why_environment(
    admin_client: Client, story: Flag, keys: dict[str, Any]
) -> None:
    rows = [r for r in admin_client.get(AUDIT).context["rows"] if r["object"].startswith("SDK")]
    web = f"SDK key {keys['web'].public_id}"
    api = f"SDK key {keys['api'].public_id}"
    assert [(r["object"], r["change"], r["user"], r["environment"], r["reason"]) for r in rows] == [
        (api, "created", "system", "production", "checkout service"),
        (web, "revoked", "alice", "staging", "token pasted in a ticket"),
        (web, "created", "alice", "staging", "web launch"),
    ]
    assert rows[-1]["details"] == "storefront; scope client"
    # the same filters as every other row
    only = admin_client.get(AUDIT, {"environment": "staging", "user": "alice"}).context["rows"]
    assert {r["change"] for r in only if r["object"] == web} == {"created", "revoked"}
    assert not any(r["object"] == api for r in only)
    flag_only = admin_client.get(AUDIT, {"flag": "checkout.new-flow"}).context["rows"]
    assert not any(r["object"].startswith("SDK") for r in flag_only)
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert admin_client.get(AUDIT, {"since": tomorrow}).context["rows"] == []


def test_audit_log__sdk_keys__secret_never_in_page_csv_or_json_lines(
    admin_client: Client, story: Flag, keys: dict[str, Any]
) -> None:
    page = admin_client.get(AUDIT).content.decode()
    exports = [
        b"".join(admin_client.get(AUDIT, {"export": kind}).streaming_content).decode()
        for kind in ("csv", "jsonl")
    ]
    assert keys["web"].public_id in page and all(keys["web"].public_id in e for e in exports)
    for token, key in zip(keys["tokens"], (keys["web"], keys["api"]), strict=True):
        secret = token.split(key.public_id, 1)[1]
        for text in (page, *exports):
            assert token not in text and secret not in text and key.secret_hash not in text


def test_audit_log__sdk_keys__only_for_users_who_may_see_keys(
    client: Client, story: Flag, keys: dict[str, Any]
) -> None:
    client.force_login(h.user("auditor", perms=("flagapp.view_flag", "flagapp.view_flagstate")))
    rows = client.get(AUDIT).context["rows"]
    assert rows and not any(r["object"].startswith("SDK") for r in rows)
    client.force_login(h.user("keeper", perms=("flagapp.view_flag", "flagapp.view_flagstate",
                                               "flagapp.view_sdkkey")))  # fmt: skip
    assert any(r["object"].startswith("SDK") for r in client.get(AUDIT).context["rows"])


@pytest.fixture
def rollout(make_flag: Any, envs: dict[str, Environment], alice: User) -> Any:
    """A rollout in staging started and paused by alice, resumed by the system."""
    from flagapp.rollouts import controller

    flag = make_flag("search.instant")
    services.update_flag_state(flag, envs["staging"], enabled=True, actor=None, reason="on")
    plan = controller.create_plan(
        flag, envs["staging"], treatment="on", control="off", steps=[1000, 10000]
    )
    controller.start(plan, actor=alice, reason="10% first")
    controller.pause(plan, actor=alice, reason="checking <b>latency</b>")
    controller.resume(plan, actor=None, reason="latency fine")
    return plan


def test_audit_log__rollout_transitions__who_why_what_served_filtered(
    admin_client: Client, story: Flag, rollout: Any
) -> None:
    """A pause changes no flag state, so before this only the plan's own page said who
    paused a rollout and why."""
    rows = [r for r in admin_client.get(AUDIT).context["rows"] if r["object"].startswith("rollout")]
    obj = f"rollout plan {rollout.pk}"
    assert [(r["object"], r["change"], r["user"], r["flag"], r["environment"], r["reason"])
            for r in rows] == [
        (obj, "rollout resume", "system", "search.instant", "staging", "latency fine"),
        (obj, "rollout pause", "alice", "search.instant", "staging", "checking <b>latency</b>"),
        (obj, "rollout start", "alice", "search.instant", "staging", "10% first"),
    ]  # fmt: skip
    assert rows[-1]["details"] == "draft -> running; on served to 0% -> 10%"
    # the same filters as every other row
    assert {r["change"] for r in admin_client.get(
        AUDIT, {"flag": "search.instant", "user": "alice"}).context["rows"]
        if r["object"] == obj} == {"rollout start", "rollout pause"}  # fmt: skip
    assert not any(
        r["object"] == obj
        for r in admin_client.get(AUDIT, {"flag": "checkout.new-flow"}).context["rows"]
    )
    assert not any(
        r["object"] == obj
        for r in admin_client.get(AUDIT, {"environment": "production"}).context["rows"]
    )
    page = admin_client.get(AUDIT).content
    assert b"checking &lt;b&gt;latency&lt;/b&gt;" in page
    jsonl = b"".join(admin_client.get(AUDIT, {"export": "jsonl"}).streaming_content).decode()
    assert sum(json.loads(line)["object"] == obj for line in jsonl.splitlines()) == 3


def test_audit_log__rollout_transitions__only_for_users_who_may_see_rollouts(
    client: Client, story: Flag, rollout: Any
) -> None:
    client.force_login(h.user("auditor", perms=("flagapp.view_flag", "flagapp.view_flagstate")))
    rows = client.get(AUDIT).context["rows"]
    assert rows and not any(r["object"].startswith("rollout") for r in rows)
    client.force_login(h.user("watcher", perms=("flagapp.view_flag", "flagapp.view_flagstate",
                                                "flagapp.view_rolloutplan")))  # fmt: skip
    assert any(r["object"].startswith("rollout") for r in client.get(AUDIT).context["rows"])
