"""Issue 13 part 7, what the admin shows people: escaped help texts, keys rather than ids,
operations and ruleset paths in words, one reason column, read-only pages as typed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from flagapp import services
from flagapp.admin.syntax import describe_path
from flagapp.governance import change_requests as crs
from flagapp.models import Environment, Flag, FlagState

pytestmark = pytest.mark.django_db


@pytest.fixture
def flag(make_flag: Any, envs: dict[str, Environment]) -> Flag:
    flag = make_flag()
    services.update_flag_state(
        flag,
        envs["production"],
        actor=None,
        reason="launch",
        enabled=True,
        fallthrough={"variant": "off"},
        rules=[
            {"when": [{"attr": "plan", "op": "eq", "values": ["pro"]}], "serve": {"variant": "on"}}
        ],
    )
    return flag


@pytest.fixture
def viewer(db: Any) -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_flag", "view_flagstate", "view_variant", "view_environment"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_flag_page__prerequisites_help__placeholders_escaped_not_html(
    admin_client: Client, flag: Flag
) -> None:
    html = admin_client.get(reverse("admin:flagapp_flag_change", args=[flag.pk])).content.decode()
    assert "One per line: &lt;flag key&gt;: &lt;variant&gt;, &lt;variant&gt;" in html
    assert "<flag key>" not in html


def test_flag_page__state_and_variant_headings__keys_not_ids(
    admin_client: Client, flag: Flag
) -> None:
    html = admin_client.get(reverse("admin:flagapp_flag_change", args=[flag.pk])).content.decode()
    assert "checkout.new-flow in production" in html
    state = FlagState.objects.get(flag=flag, environment__key="production")
    assert f"{flag.pk}@{state.environment_id}" not in html
    assert str(flag.variants.get(key="on")) == "checkout.new-flow: on"


def test_describe_path__engine_paths__words() -> None:
    assert (
        describe_path("rules[1].when[0].values[0]: invalid regular expression")
        == "Rule 2, condition 1, value 1: invalid regular expression"
    )
    assert describe_path("prerequisites[0].flag: unknown") == "Prerequisite 1, flag: unknown"
    assert describe_path("unknown operator 'like'") == "unknown operator 'like'"


def test_change_request_pages__operation__in_words(
    flag: Flag, envs: dict[str, Environment], admin_user: User, admin_client: Client
) -> None:
    other = User.objects.create_user("author", is_staff=True, is_superuser=True)
    change = {
        "operation": "set_flag_enabled",
        "flag": flag.key,
        "environment": "staging",
        "params": {"enabled": True},
    }
    cr = crs.propose(change, author=other, reason="open staging")
    listing = admin_client.get(reverse("admin:flagapp_changerequest_changelist")).content.decode()
    page = admin_client.get(
        reverse("admin:flagapp_changerequest_change", args=[cr.pk])
    ).content.decode()
    for html in (listing, page):
        assert ">set_flag_enabled<" not in html and "<code>set_flag_enabled" not in html
        assert "turn on" in html
    assert crs.describe_operation("update_flag_state") == "targeting change"


def test_history__flag__one_reason_column_system_user_and_json_values(
    admin_client: Client, flag: Flag
) -> None:
    services.update_flag(flag, name="Renamed", actor=None, reason="clearer name")
    html = admin_client.get(reverse("admin:flagapp_flag_history", args=[flag.pk])).content.decode()
    assert "history_change_reason" not in html
    assert html.count("clearer name") == 1
    assert "<td>\n            system\n" in html or ">system<" in html.replace(" ", "").replace(
        "\n", ""
    )
    assert "variant on = true" in html and "variant off = false" in html
    assert "= True" not in html and "= False" not in html


def test_read_only_pages__view_permission__no_reason_field_values_as_typed(
    viewer: Client, flag: Flag
) -> None:
    html = viewer.get(reverse("admin:flagapp_flag_change", args=[flag.pk])).content.decode()
    assert "Reason" not in html
    assert '<td class="field-value_text">' in html
    assert "<p>true</p>" in html and "<p>True</p>" not in html  # as the edit form spells it
    assert '<div class="readonly">off</div>' in html  # fallthrough in the text syntax
    assert "{&quot;variant&quot;" not in html
    state = FlagState.objects.get(flag=flag, environment__key="production")
    page = viewer.get(reverse("admin:flagapp_flagstate_change", args=[state.pk])).content.decode()
    assert "Reason" not in page and "{&quot;variant&quot;" not in page


def test_history_version_page__reason_field__not_shown(admin_client: Client, flag: Flag) -> None:
    version = flag.history.last()
    url = reverse("admin:flagapp_flag_simple_history", args=[flag.pk, version.history_id])
    html = admin_client.get(url).content.decode()
    assert 'name="reason"' not in html


def test_describe_operation__enabled_only_state_change__turn_on_or_off() -> None:
    """set_flag_enabled proposes through update_flag_state: an on/off toggle held for
    approval reads "turn on", not "targeting change"."""
    on = {"params": {"enabled": True, "expected_version": 3}}
    off = {"params": {"enabled": False}}
    mixed = {"params": {"enabled": True, "rules": []}}
    assert crs.describe_operation("update_flag_state", on) == "turn on"
    assert crs.describe_operation("update_flag_state", off) == "turn off"
    assert crs.describe_operation("update_flag_state", mixed) == "targeting change"
