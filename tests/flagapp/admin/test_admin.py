"""The admin through the Django test client: list, add, edit with reason, rules, kill
switch, errors as field errors, read-only history, permissions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from flagapp import services
from flagapp.models import Environment, Flag, FlagState, Segment, TargetingRule

pytestmark = pytest.mark.django_db

IN_30_DAYS = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def form_data(response: Any) -> dict[str, Any]:
    """The POST data a browser would send back for an admin change/add page as rendered."""
    data: dict[str, Any] = {}

    def add_form(form: Any) -> None:
        for name, field in form.fields.items():
            value = form[name].value()
            key = form.add_prefix(name)
            if getattr(field.widget, "input_type", None) == "checkbox" or isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif value is None:
                data[key] = ""
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            else:
                data[key] = str(value)
            if field.show_hidden_initial and key not in data:
                pass
            elif field.show_hidden_initial:
                # what the browser posts back as the shown value (Django's hidden initial)
                data[form.add_initial_prefix(name)] = data[key]

    add_form(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        mgmt = formset.management_form
        for name in mgmt.fields:
            data[mgmt.add_prefix(name)] = str(mgmt[name].value())
        for form in formset.forms:
            add_form(form)
    return data


def post_errors(response: Any) -> list[str]:
    """Every error message shown on a re-rendered admin form."""
    texts: list[str] = []
    for err in response.context["errors"]:
        texts.extend(err if isinstance(err, list) else [str(err)])
    form = response.context["adminform"].form
    for msgs in form.errors.values():
        texts.extend(msgs)
    for inline in response.context["inline_admin_formsets"]:
        texts.extend(inline.formset.non_form_errors())
        for errs in inline.formset.errors:
            for msgs in errs.values():
                texts.extend(msgs)
    return [str(t) for t in texts]


@pytest.fixture
def flag(make_flag: Any, envs: dict[str, Environment]) -> Flag:
    return make_flag()


def test_changelist__flags__env_columns_owner_type_expiry(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    services.set_flag_enabled(flag, envs["staging"], True, actor=None, reason="x")
    response = admin_client.get(reverse("admin:flagapp_flag_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    for column in ("development", "staging", "production", "Owner", "Type", "Expires"):
        assert column in html
    assert html.count('alt="True"') == 1 and html.count('alt="False"') >= 2
    assert IN_30_DAYS in html


def test_changelist__expired_filter_and_search__narrowed(
    admin_client: Client, make_flag: Any, envs: dict[str, Environment]
) -> None:
    make_flag("checkout.new-flow")
    old = make_flag("search.ranking.v2")
    Flag.objects.filter(pk=old.pk).update(expires_on=dt.date.today() - dt.timedelta(days=3))
    url = reverse("admin:flagapp_flag_changelist")
    expired = admin_client.get(url, {"expired": "yes"})
    assert [f.key for f in expired.context["cl"].result_list] == ["search.ranking.v2"]
    found = admin_client.get(url, {"q": "checkout"})
    assert [f.key for f in found.context["cl"].result_list] == ["checkout.new-flow"]
    assert "(expired)" in admin_client.get(url).content.decode()


def _add_data(admin_client: Client, **overrides: Any) -> dict[str, Any]:
    page = admin_client.get(reverse("admin:flagapp_flag_add"))
    data = form_data(page)
    owner = page.context["adminform"].form.fields["owner"].queryset.first()
    data.update(
        {
            "key": "checkout.express",
            "name": "Express checkout",
            "kind": "boolean",
            "flag_type": "release",
            "owner": str(owner.pk),
            "risk": "low",
            "expires_on": IN_30_DAYS,
            "tags": "web, q3",
            "reason": "JIRA-7 express checkout",
        }
    )
    data.update(overrides)
    return data


def test_add_flag__valid_post__created_through_services_with_reason(
    admin_client: Client, owner_group: Any, envs: dict[str, Environment], admin_user: User
) -> None:
    data = _add_data(admin_client)
    data.update(
        {
            "variants-0-key": "on",
            "variants-0-value": "true",
            "variants-1-key": "off",
            "variants-1-value": "false",
        }
    )
    response = admin_client.post(reverse("admin:flagapp_flag_add"), data)
    assert response.status_code == 302, post_errors(response)
    flag = Flag.objects.get(key="checkout.express")
    assert flag.tags == ["web", "q3"]
    assert dict(flag.variants.values_list("key", "value")) == {"on": True, "off": False}
    assert FlagState.objects.filter(flag=flag).count() == 3
    row = flag.history.get()
    assert (row.history_change_reason, row.history_user) == ("JIRA-7 express checkout", admin_user)
    assert "JIRA-7" in LogEntry.objects.get(object_id=str(flag.pk)).change_message


def test_add_flag__no_reason__form_error_and_nothing_created(
    admin_client: Client, owner_group: Any, envs: dict[str, Environment]
) -> None:
    response = admin_client.post(
        reverse("admin:flagapp_flag_add"), _add_data(admin_client, reason="")
    )
    assert response.status_code == 200
    assert "reason" in response.context["adminform"].form.errors
    assert not Flag.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"key": "Bad Key"}, "key", "does not match"),
        ({"expires_on": ""}, "expires_on", "need an expiry date"),
        (
            {"kind": "integer", "variants-0-key": "a", "variants-0-value": "1.5"},
            None,
            "whole numbers",
        ),
        (
            {
                "kind": "string",
                "variants-0-key": "a",
                "variants-0-value": "x",
                "variants-1-key": "a",
                "variants-1-value": "y",
            },
            None,
            "Please correct the duplicate",
        ),
    ],
)
def test_add_flag__bad_input__field_error_nothing_created(
    admin_client: Client,
    owner_group: Any,
    envs: dict[str, Environment],
    overrides: dict[str, Any],
    field: str | None,
    fragment: str,
) -> None:
    response = admin_client.post(
        reverse("admin:flagapp_flag_add"), _add_data(admin_client, **overrides)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    if field:
        assert fragment in " ".join(errors[field])
    else:
        assert fragment in " ".join(post_errors(response))
    assert not Flag.objects.exists()


def test_add_flag__key_of_deleted_flag__key_error(admin_client: Client, flag: Flag) -> None:
    services.delete_flag(flag, actor=None, reason="gone")
    response = admin_client.post(
        reverse("admin:flagapp_flag_add"), _add_data(admin_client, key="checkout.new-flow")
    )
    assert "never reused" in " ".join(response.context["adminform"].form.errors["key"])


def _change(admin_client: Client, flag: Flag) -> tuple[str, dict[str, Any]]:
    url = reverse("admin:flagapp_flag_change", args=[flag.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    return url, form_data(page)


def _state_prefix(data: dict[str, Any], env_key: str, flag: Flag) -> str:
    state = FlagState.objects.get(flag=flag, environment__key=env_key)
    for key, value in data.items():
        if key.endswith("-id") and key.startswith("states-") and value == str(state.pk):
            return key[: -len("-id")]
    raise AssertionError("state form not found")


def test_change_flag__edit_state_and_name__saved_with_reason_and_version(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    url, data = _change(admin_client, flag)
    prefix = _state_prefix(data, "production", flag)
    data.update(
        {
            "name": "New checkout flow",
            f"{prefix}-enabled": "on",
            f"{prefix}-fallthrough": "on:10 off:90",
            "reason": "launch 10%",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    flag.refresh_from_db()
    state = FlagState.objects.get(flag=flag, environment=envs["production"])
    assert flag.name == "New checkout flow"
    assert state.enabled and state.version == 2
    assert state.fallthrough == {
        "rollout": {"weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]}
    }
    assert state.history.first().history_change_reason == "launch 10%"
    staging = FlagState.objects.get(flag=flag, environment=envs["staging"])
    assert staging.version == 1  # untouched forms change nothing


def test_change_flag__stale_state_version__conflict_error_nothing_saved(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    url, data = _change(admin_client, flag)
    services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="other tab")
    prefix = _state_prefix(data, "production", flag)
    data.update({f"{prefix}-fallthrough": "on", "name": "Renamed", "reason": "mine"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any(
        "checkout.new-flow in production was changed by someone else since you opened it" in e
        for e in post_errors(response)
    )
    flag.refresh_from_db()
    assert flag.name != "Renamed"
    assert FlagState.objects.get(flag=flag, environment=envs["production"]).fallthrough == {
        "variant": "off"
    }


def test_change_flag__rename_while_another_environment_changed__saved_that_state_kept(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    """The concurrency check is on what the user edited: a rename is not refused because
    someone turned the flag on in production since the page was opened."""
    url, data = _change(admin_client, flag)
    services.update_flag_state(
        flag,
        envs["production"],
        actor=None,
        reason="other tab",
        enabled=True,
        fallthrough={"variant": "on"},
    )
    data.update({"name": "Renamed", "reason": "clearer name"})
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    flag.refresh_from_db()
    assert flag.name == "Renamed"
    state = FlagState.objects.get(flag=flag, environment=envs["production"])
    assert state.enabled and state.fallthrough == {"variant": "on"} and state.version == 2


def test_change_flag__fallthrough_unknown_variant__error_on_that_state(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    url, data = _change(admin_client, flag)
    prefix = _state_prefix(data, "staging", flag)
    data.update({f"{prefix}-fallthrough": "maybe", "reason": "typo"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any("staging: " in e and "'maybe'" in e for e in post_errors(response))


def test_change_flag__protected_environment__approval_error(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    url, data = _change(admin_client, flag)
    prefix = _state_prefix(data, "production", flag)
    data.update({f"{prefix}-enabled": "on", "reason": "launch"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any("approved change request" in e for e in post_errors(response))
    assert not FlagState.objects.get(flag=flag, environment=envs["production"]).enabled


def test_change_flag__remove_variant_used_by_fallthrough_and_switch__both_applied(
    admin_client: Client, make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag(
        "ui.banner.color", kind="string", variants={"red": "#f00", "blue": "#00f", "off": "none"}
    )
    url, data = _change(admin_client, flag)
    for i in range(3):
        if data.get(f"variants-{i}-key") == "off":
            data[f"variants-{i}-DELETE"] = "on"
    for env in envs:
        data[f"{_state_prefix(data, env, flag)}-fallthrough"] = "blue"
    data["reason"] = "drop off variant"
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    assert set(flag.variants.values_list("key", flat=True)) == {"red", "blue"}
    assert {s.fallthrough["variant"] for s in FlagState.objects.filter(flag=flag)} == {"blue"}


def test_state_page__add_rules_in_text_syntax__saved_in_order(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    state = FlagState.objects.get(flag=flag, environment=envs["production"])
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(admin_client.get(url))
    data.update(
        {
            "rules-0-order": "2",
            "rules-0-description": "pros",
            "rules-0-conditions": "plan in pro, enterprise\nnot country eq US",
            "rules-0-serve": "on",
            "rules-TOTAL_FORMS": "2",
            "rules-1-order": "1",
            "rules-1-rule_id": "beta",
            "rules-1-conditions": "",
            "rules-1-serve": "on:1 off:99 by=company.id",
            "rules-1-description": "",
            "enabled": "on",
            "reason": "targeting for pros",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    rules = list(TargetingRule.objects.filter(state=state).order_by("order"))
    assert [r.rule_id for r in rules] == ["beta", "r1"]
    assert rules[1].conditions == [
        {"attr": "plan", "op": "in", "values": ["pro", "enterprise"]},
        {"attr": "country", "op": "eq", "values": ["US"], "negate": True},
    ]
    assert rules[0].serve["rollout"]["bucket_by"] == "company.id"
    page = admin_client.get(url).content.decode()
    assert "plan in pro, enterprise" in page  # round-trips to the text syntax


@pytest.mark.parametrize(
    ("conditions", "serve", "field", "fragment"),
    [
        ("plan like pro", "on", "conditions", "unknown operator 'like'"),
        ("email matches (unclosed", "on", "conditions", "Rule 1, condition 1, value 1: "),
        ("plan in pro", "maybe", "serve", "variant 'maybe' is not defined"),
        ("plan in pro", "on:x", "serve", "a weight is"),
    ],
)
def test_state_page__bad_rule__error_on_the_rule_field(
    admin_client: Client,
    flag: Flag,
    envs: dict[str, Environment],
    conditions: str,
    serve: str,
    field: str,
    fragment: str,
) -> None:
    state = FlagState.objects.get(flag=flag, environment=envs["staging"])
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(admin_client.get(url))
    data.update(
        {
            "rules-0-conditions": conditions,
            "rules-0-serve": serve,
            "rules-0-order": "0",
            "reason": "x",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200
    rule_form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert fragment in " ".join(rule_form.errors.get(field, [])), rule_form.errors
    assert not TargetingRule.objects.exists()


def test_kill_switch_action__with_reason__flag_off_and_audited(
    admin_client: Client, flag: Flag, envs: dict[str, Environment], admin_user: User
) -> None:
    env = envs["production"]
    services.set_flag_enabled(flag, env, True, actor=None, reason="on")
    url = reverse("admin:flagapp_flag_changelist")
    ask = admin_client.post(
        url, {"action": "kill_switch_production", "_selected_action": [str(flag.pk)]}
    )
    assert ask.status_code == 200 and b"Reason for the change" in ask.content
    assert FlagState.objects.get(flag=flag, environment=env).enabled
    refused = admin_client.post(
        url,
        {
            "action": "kill_switch_production",
            "apply": "1",
            "_selected_action": [str(flag.pk)],
            "reason": "",
        },
    )
    assert refused.status_code == 200
    assert FlagState.objects.get(flag=flag, environment=env).enabled
    done = admin_client.post(
        url,
        {
            "action": "kill_switch_production",
            "apply": "1",
            "_selected_action": [str(flag.pk)],
            "reason": "incident 42",
        },
    )
    assert done.status_code == 302
    state = FlagState.objects.get(flag=flag, environment=env)
    assert not state.enabled
    row = state.history.first()
    assert (row.history_change_reason, row.history_user) == ("incident 42", admin_user)
    assert "incident 42" in LogEntry.objects.filter(object_id=str(flag.pk)).first().change_message


def test_archive_action__with_reason__archived(admin_client: Client, flag: Flag) -> None:
    admin_client.post(
        reverse("admin:flagapp_flag_changelist"),
        {
            "action": "archive_flags",
            "apply": "1",
            "_selected_action": [str(flag.pk)],
            "reason": "launched",
        },
    )
    flag.refresh_from_db()
    assert flag.archived


@pytest.fixture
def viewer(db: Any) -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_flag", "view_flagstate", "view_segment", "view_environment"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_view_only_user__post_change_or_kill__refused_nothing_changed(
    viewer: Client, flag: Flag, envs: dict[str, Environment], admin_client: Client
) -> None:
    url, data = _change(admin_client, flag)
    page = viewer.get(url)
    assert page.status_code == 200
    data.update({"name": "hijacked", "reason": "x"})
    assert viewer.post(url, data).status_code == 403
    changelist = viewer.get(reverse("admin:flagapp_flag_changelist"))
    assert b"kill_switch_production" not in changelist.content
    viewer.post(
        reverse("admin:flagapp_flag_changelist"),
        {
            "action": "kill_switch_production",
            "apply": "1",
            "_selected_action": [str(flag.pk)],
            "reason": "x",
        },
    )
    state = FlagState.objects.get(flag=flag, environment=envs["production"])
    url_state = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    assert viewer.post(url_state, {"enabled": "on", "reason": "x"}).status_code == 403
    flag.refresh_from_db()
    assert flag.name == "checkout.new-flow"
    assert FlagState.objects.filter(flag=flag, version=1).count() == 3
    assert viewer.get(reverse("admin:flagapp_flag_add")).status_code == 403
    seg = services.create_segment(key="beta", name="Beta", actor=None, reason="x")
    seg_url = reverse("admin:flagapp_segment_change", args=[seg.pk])
    assert viewer.get(seg_url).status_code == 200
    assert viewer.post(seg_url, {"name": "hijacked", "reason": "x"}).status_code == 403
    env_url = reverse("admin:flagapp_environment_change", args=[envs["production"].pk])
    assert (
        viewer.post(
            env_url, {"name": "x", "protected": "", "order": "0", "reason": "x"}
        ).status_code
        == 403
    )
    seg.refresh_from_db()
    assert seg.name == "Beta" and Environment.objects.get(key="production").name == "Production"


def test_history__flag__listed_with_reason_and_read_only(admin_client: Client, flag: Flag) -> None:
    services.update_flag(flag, name="Renamed", actor=None, reason="clearer name")
    services.set_flag_enabled(
        flag, Environment.objects.get(key="production"), True, actor=None, reason="launch day"
    )
    history = admin_client.get(reverse("admin:flagapp_flag_history", args=[flag.pk]))
    assert history.status_code == 200 and b"clearer name" in history.content
    related = history.context["related_history"]
    assert related[0]["what"] == "production: on, v2"
    assert related[0]["reason"] == "launch day"
    assert b"launch day" in history.content
    version = flag.history.last()
    url = reverse("admin:flagapp_flag_simple_history", args=[flag.pk, version.history_id])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"name": "reverted"}).status_code == 403
    flag.refresh_from_db()
    assert flag.name == "Renamed"


def test_segment_admin__add_with_conditions__created(
    admin_client: Client, envs: dict[str, Environment]
) -> None:
    url = reverse("admin:flagapp_segment_add")
    data = form_data(admin_client.get(url))
    data.update(
        {
            "key": "beta-testers",
            "name": "Beta testers",
            "include": "u1\nu2",
            "exclude": "u3",
            "conditions": "email ends_with/i @example.com",
            "reason": "beta programme",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302
    seg = Segment.objects.get(key="beta-testers")
    assert seg.include == ["u1", "u2"] and seg.exclude == ["u3"]
    assert seg.conditions == [
        {"attr": "email", "op": "ends_with", "values": ["@example.com"], "case_insensitive": True}
    ]
    bad = dict(data, key="other", conditions="email matches (")
    response = admin_client.post(url, bad)
    assert "Condition 1, value 1: " in " ".join(
        response.context["adminform"].form.errors["conditions"]
    )


def test_environment_admin__add__states_created(admin_client: Client, flag: Flag) -> None:
    url = reverse("admin:flagapp_environment_add")
    data = form_data(admin_client.get(url))
    data.update({"key": "qa", "name": "QA", "order": "5", "reason": "new QA env"})
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert FlagState.objects.filter(flag=flag, environment__key="qa").exists()


def test_admin_index__flag_state_hidden_snapshots_read_only(
    admin_client: Client, flag: Flag
) -> None:
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "/admin/flagapp/flag/" in index
    assert "/admin/flagapp/flagstate/" not in index
    assert admin_client.get(reverse("admin:flagapp_snapshot_add")).status_code == 403


def test_change_flag__rules_in_one_line_syntax__saved_descriptions_kept(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    env = envs["staging"]
    services.update_flag_state(
        flag,
        env,
        actor=None,
        reason="x",
        rules=[
            {
                "id": "pros",
                "description": "paying users",
                "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"variant": "on"},
            }
        ],
    )
    url, data = _change(admin_client, flag)
    prefix = _state_prefix(data, "staging", flag)
    assert data[f"{prefix}-rules_text"] == "[pros] plan in pro => on"
    data[f"{prefix}-rules_text"] = (
        "[beta] in_segment beta => on:10 off:90\n[pros] plan in pro, team => on\n=> off"
    )
    services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="x")
    data["reason"] = "beta first"
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    state = FlagState.objects.get(flag=flag, environment=env)
    rules = list(state.rules.order_by("order").values_list("rule_id", "description", "serve"))
    assert [r[0] for r in rules] == ["beta", "pros", "r1"]
    assert rules[1][1] == "paying users"
    assert rules[0][2]["rollout"]["weights"][0] == {"variant": "on", "weight": 10}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("plan in pro", "expected '[id] <condition>; <condition> => <serve>'"),
        ("[a] plan like pro => on", "unknown operator 'like'"),
        ("[a] plan in pro => maybe", "Rule 1, serve, variant: variant 'maybe'"),
    ],
)
def test_change_flag__bad_rule_line__error_on_rules_field(
    admin_client: Client, flag: Flag, envs: dict[str, Environment], text: str, fragment: str
) -> None:
    url, data = _change(admin_client, flag)
    prefix = _state_prefix(data, "production", flag)
    data.update({f"{prefix}-rules_text": text, "reason": "x"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    state_forms = response.context["inline_admin_formsets"][1].formset.forms
    errors = [e for f in state_forms for e in f.errors.get("rules_text", [])]
    assert any(fragment in e for e in errors), errors
    assert not TargetingRule.objects.exists()


def test_archive_action__running_rollout_and_pending_request__warned_paused_withdrawn(
    admin_client: Client, flag: Flag, envs: dict[str, Environment]
) -> None:
    from flagapp.governance import change_requests as crs
    from flagapp.models import ChangeRequest
    from flagapp.rollouts import controller

    services.update_flag_state(flag, envs["staging"], enabled=True, actor=None, reason="on")
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    controller.start(plan, actor=None, reason="go")
    author = User.objects.create_user("author", is_staff=True, is_superuser=True)
    change = {
        "operation": "set_flag_enabled",
        "flag": flag.key,
        "environment": "production",
        "params": {"enabled": True},
    }
    cr = crs.propose(change, author=author, reason="launch")
    url = reverse("admin:flagapp_flag_changelist")
    ask = admin_client.post(url, {"action": "archive_flags", "_selected_action": [str(flag.pk)]})
    html = ask.content.decode()
    assert f"rollout #{plan.pk} in staging is running; archiving pauses it" in html
    assert f"change request #{cr.pk} (turn on) is pending; archiving withdraws it" in html
    done = admin_client.post(
        url,
        {
            "action": "archive_flags",
            "apply": "1",
            "_selected_action": [str(flag.pk)],
            "reason": "launched",
        },
    )
    assert done.status_code == 302
    flag.refresh_from_db()
    plan.refresh_from_db()
    cr.refresh_from_db()
    assert flag.archived and plan.state == "paused"
    assert cr.status == ChangeRequest.STATUS_WITHDRAWN and "flag archived: launched" in cr.detail
