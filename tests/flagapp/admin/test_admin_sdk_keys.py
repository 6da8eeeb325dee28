"""The admin's SDK keys page (issue 13 part 6): create through the service showing the
token exactly once, revoke with a reason, last used, environment, filters."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from flagapp.exceptions import ChangeNotPermitted, FlagValidationError
from flagapp.models import Environment, SdkKey
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db

ADD = "/admin/flagapp/sdkkey/add/"
LIST = "/admin/flagapp/sdkkey/"


@pytest.fixture
def ops(db: Any) -> User:
    return h.user(
        "ops", perms=("flagapp.view_sdkkey", "flagapp.add_sdkkey", "flagapp.change_sdkkey")
    )


def _client(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _create(client: Client, env: Environment, **data: Any) -> Any:
    return client.post(
        ADD,
        {
            "environment": env.pk,
            "name": "checkout-service",
            "scope": "server",
            "reason": "new service",
            **data,
        },
    )


def test_sdk_key_add__valid_post__token_shown_once_no_store_and_works(
    ops: User, envs: dict[str, Environment], caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(ops)
    with caplog.at_level(logging.DEBUG):
        response = _create(client, envs["production"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = SdkKey.objects.get()
    token = response.context["token"]
    assert token in response.content.decode()
    assert keys.authenticate_token(token).environment_key == "production"
    assert (key.created_by, key.created_reason) == (ops, "new service")
    # Never again: not on the key's page, the list, the admin's history, nor in any log line.
    for url in (LIST, f"{LIST}{key.pk}/change/", f"{LIST}{key.pk}/history/"):
        assert token not in client.get(url).content.decode(), url
    assert token[-32:] not in caplog.text
    assert all(token[-32:] not in (e.change_message or "") for e in LogEntry.objects.all())
    assert token not in str(list(SdkKey.objects.values()))


def test_sdk_key_add__no_reason__refused_on_reason_field_nothing_created(
    ops: User, envs: dict[str, Environment]
) -> None:
    response = _create(_client(ops), envs["production"], reason="")
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert "token" not in response.context
    assert not SdkKey.objects.exists()


def test_sdk_key_add__name_too_long__refused_naming_the_field(
    ops: User, envs: dict[str, Environment]
) -> None:
    response = _create(_client(ops), envs["production"], name="x" * 101)
    assert "name" in response.context["form"].errors
    assert not SdkKey.objects.exists()


def test_sdk_key_add__view_only_user__forbidden(envs: dict[str, Environment]) -> None:
    viewer = h.user("viewer", perms=("flagapp.view_sdkkey",))
    assert _create(_client(viewer), envs["production"]).status_code == 403
    assert not SdkKey.objects.exists()


def test_sdk_key_page__revoke_with_reason__refused_after_and_reason_shown(
    ops: User, envs: dict[str, Environment]
) -> None:
    key, token = sdk_keys.create_sdk_key(envs["staging"], name="old", actor=ops, reason="r")
    keys.authenticate_token(token)  # warm: revocation must still bite at once
    client = _client(ops)
    url = f"{LIST}{key.pk}/change/"
    page = client.get(url).content.decode()
    assert "Revoke this key" in page and "staging" in page
    assert client.post(url, {"reason": ""}).context["form"].errors["reason"]
    assert SdkKey.objects.get(pk=key.pk).revoked_at is None
    response = client.post(url, {"reason": "leaked in a log"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.revoked_by, key.revoke_reason) == (ops, "leaked in a log")
    with pytest.raises(keys.AuthFailure):
        keys.authenticate_token(token)
    page = client.get(url).content.decode()
    assert "leaked in a log" in page and "Revoke this key" not in page


def test_sdk_key_list__filters__by_environment_and_status(
    ops: User, envs: dict[str, Environment]
) -> None:
    a, _ = sdk_keys.create_sdk_key(envs["staging"], name="svc-a", actor=None, reason="r")
    b, _ = sdk_keys.create_sdk_key(envs["production"], name="svc-b", actor=None, reason="r")
    c, _ = sdk_keys.create_sdk_key(envs["production"], name="svc-c", actor=None, reason="r")
    sdk_keys.revoke_sdk_key(c, actor=None, reason="rotated")
    client = _client(ops)

    def shown(query: str) -> set[str]:
        rows = client.get(LIST + query).context["cl"].result_list
        return {k.name for k in rows}

    assert shown("") == {"svc-a", "svc-b", "svc-c"}
    assert shown(f"?environment__id__exact={envs['production'].pk}") == {"svc-b", "svc-c"}
    assert shown("?status=active") == {"svc-a", "svc-b"}
    assert shown("?status=revoked") == {"svc-c"}
    assert shown("?scope__exact=client") == set()
    page = client.get(LIST).content.decode()
    assert "never" in page  # last used
    assert a.public_id in page and b.secret_hash not in page


def test_sdk_key_list__revoke_action__asks_a_reason_then_revokes(
    ops: User, envs: dict[str, Environment]
) -> None:
    key, _ = sdk_keys.create_sdk_key(envs["staging"], actor=None, reason="r")
    client = _client(ops)
    data = {"action": "revoke_selected", "_selected_action": [key.pk]}
    asked = client.post(LIST, data)
    assert asked.status_code == 200 and SdkKey.objects.get().revoked_at is None
    client.post(LIST, {**data, "apply": "1", "reason": "service retired"})
    assert SdkKey.objects.get().revoke_reason == "service retired"


def test_create_sdk_key__unknown_environment__error_names_environment(db: Any) -> None:
    with pytest.raises(FlagValidationError) as info:
        sdk_keys.create_sdk_key("nope", actor=None, reason="r")
    assert "environment" in info.value.message_dict


def test_create_sdk_key__user_without_permission__not_permitted(
    envs: dict[str, Environment],
) -> None:
    viewer = h.user("viewer", perms=("flagapp.view_sdkkey",))
    with pytest.raises(ChangeNotPermitted):
        sdk_keys.create_sdk_key(envs["staging"], actor=viewer, reason="r")
    assert not SdkKey.objects.exists()


def test_revoke_sdk_key__twice__first_revocation_kept(envs: dict[str, Environment]) -> None:
    key, _ = sdk_keys.create_sdk_key(envs["staging"], actor=None, reason="r")
    first = sdk_keys.revoke_sdk_key(key.public_id, actor=None, reason="first")
    again = sdk_keys.revoke_sdk_key(key.pk, actor=None, reason="second")
    assert (again.revoked_at, again.revoke_reason) == (first.revoked_at, "first")


def test_revoke_sdk_key__unknown_key__error_names_key(db: Any) -> None:
    with pytest.raises(FlagValidationError) as info:
        sdk_keys.revoke_sdk_key("nope", actor=None, reason="r")
    assert "key" in info.value.message_dict


def test_admin_index__sdk_keys__listed(ops: User) -> None:
    assert (
        reverse("admin:flagapp_sdkkey_changelist") in _client(ops).get("/admin/").content.decode()
    )


def test_create_sdk_key__protected_environment_without_its_permission__not_permitted(
    ops: User, envs: dict[str, Environment]
) -> None:
    from flagapp import services

    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    with pytest.raises(ChangeNotPermitted):
        sdk_keys.create_sdk_key(envs["production"], actor=ops, reason="r")
    response = _create(_client(ops), envs["production"])
    assert "token" not in response.context and not SdkKey.objects.exists()


def test_flagstate_page__rules_inline__every_input_has_an_accessible_name(
    make_flag: Any, envs: dict[str, Environment], admin_client: Any
) -> None:
    # A tabular inline names its columns in <th> cells, which label no input: axe-core
    # reported each rule's inputs (and its Delete box) as unlabelled, critical.
    from flagapp import services
    from flagapp.models import FlagState

    flag = make_flag()
    services.update_flag_state(
        flag, envs["staging"], actor=None, reason="x",
        rules=[{"id": "pros", "when": [], "serve": {"variant": "on"}}],
    )  # fmt: skip
    state = FlagState.objects.get(flag=flag, environment=envs["staging"])
    html = admin_client.get(f"/admin/flagapp/flagstate/{state.pk}/change/").content.decode()
    for name, label in (("order", "Order"), ("conditions", "Conditions"), ("serve", "Serve"),
                        ("DELETE", "Delete")):  # fmt: skip
        tag = re.search(rf'<(?:input|textarea|select)[^>]*id="id_rules-0-{name}"[^>]*>', html)
        assert tag is not None, name
        assert f'aria-label="{label}"' in tag.group(0), tag.group(0)


def test_sdk_key_add__client_scope__created_client_side(
    ops: User, envs: dict[str, Environment]
) -> None:
    response = _create(_client(ops), envs["staging"], scope="client")
    assert "token" in response.context
    assert SdkKey.objects.get().scope == "client"
