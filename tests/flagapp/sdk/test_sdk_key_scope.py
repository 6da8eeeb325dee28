"""Client-side SDK keys (issue 15, part 3): a key shipped to browsers is public, so it may
call OFREP (evaluated answers) and nothing that reveals the ruleset -- rules, segment member
lists -- or writes events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from flagapp.exceptions import FlagValidationError
from flagapp.models import SdkKey
from flagapp.sdk import keys
from flagapp.sdk.auth import CLIENT_KEY_REFUSED
from flagapp.services import sdk_keys
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_token(environments: dict[str, Any], install_flags: Any) -> str:
    install_flags(ALL_KINDS, version=2)
    _key, token = sdk_keys.create_sdk_key(
        environments["production"], name="web", scope="client", actor=None, reason="tests"
    )
    return token


def test_create_sdk_key__default__server_scope(environments: dict[str, Any]) -> None:
    key, _token = sdk_keys.create_sdk_key(environments["production"], actor=None, reason="tests")
    assert key.scope == "server"


def test_create_sdk_key__unknown_scope__error_on_scope_naming_scopes(
    environments: dict[str, Any],
) -> None:
    with pytest.raises(FlagValidationError, match="one of server, client, not 'admin'"):
        sdk_keys.create_sdk_key(
            environments["production"], scope="admin", actor=None, reason="tests"
        )
    assert not SdkKey.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/sdk/v1/ruleset"), ("get", "/sdk/v1/stream"), ("post", "/sdk/v1/events")],
)
def test_client_key__server_endpoints__403_naming_the_scope(
    client_token: str, method: str, path: str
) -> None:
    response = getattr(Client(), method)(
        path, data="{}" if method == "post" else None, content_type="application/json",
        **bearer(client_token),
    )  # fmt: skip
    assert response.status_code == 403
    assert response.json() == {"errorCode": "GENERAL", "errorDetails": CLIENT_KEY_REFUSED}
    assert b"demo.pro" not in response.content  # no rule, no flag key leaks


def test_client_key__ofrep_single_and_bulk__answered(client_token: str) -> None:
    client = Client()
    body = json.dumps({"context": {"targetingKey": "u1", "plan": "pro"}})
    single = client.post(
        "/ofrep/v1/evaluate/flags/demo.pro", body, "application/json", **bearer(client_token)
    )
    bulk = client.post("/ofrep/v1/evaluate/flags", body, "application/json", **bearer(client_token))
    assert single.status_code == 200 and single.json()["value"] is True
    assert bulk.status_code == 200
    assert {f["key"] for f in bulk.json()["flags"]} == set(ALL_KINDS)


def test_server_key__sdk_ruleset__still_answered(sdk_token: str, install_flags: Any) -> None:
    install_flags(ALL_KINDS, version=2)
    response = Client().get("/sdk/v1/ruleset", **bearer(sdk_token))
    assert response.status_code == 200


def test_flagapp_sdk_key_command__create_client__client_key_listed(
    environments: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("flagapp_sdk_key", "create", "--environment", "production", "--scope", "client")
    out, err = capsys.readouterr()
    token = out.strip()
    key = SdkKey.objects.get()
    assert key.scope == "client" and keys.public_id_of(token) == key.public_id
    assert "created client SDK key" in err
    call_command("flagapp_sdk_key", "list")
    assert f"{key.public_id}  production  client  active" in capsys.readouterr().out
