"""Management-API tokens are stored hashed and shown once (issue 10, finding 8).

Before: DRF's ``authtoken`` kept every token in clear in the database, so a backup or a
read replica handed out every API user's credentials. Now only a sha256 and a public prefix
are stored; ``manage.py flagapp_api_token create`` prints the token once.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from flagapp.api import tokens
from flagapp.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser("tokadmin", "t@example.com", "pw")


def _get(token: str, scheme: str = "Token") -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    return client.get("/api/v1/environments/")


def test_create_api_token__database_rows__hold_no_secret(admin: User) -> None:
    row, token = tokens.create_api_token(admin, "ci")
    assert token.startswith("fapi_") and len(token) == 5 + 40
    assert row.prefix == token[5:13]
    assert row.secret_hash == tokens.hash_token(token)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        stored = [str(v) for r in cursor.fetchall() for v in r]
    assert not any(token[13:] in v for v in stored), "the secret part is stored somewhere"


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_api_token_auth__valid_token__authenticates_and_records_use(
    admin: User, scheme: str
) -> None:
    row, token = tokens.create_api_token(admin)
    assert row.last_used_at is None
    response = _get(token, scheme)
    assert response.status_code == 200, response.content
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_api_token_auth__last_used__written_at_most_once_a_minute(
    admin: User, django_assert_num_queries: Any
) -> None:
    _, token = tokens.create_api_token(admin)
    assert tokens.authenticate(token) is not None
    with django_assert_num_queries(1):  # the lookup only, no last_used_at write
        assert tokens.authenticate(token) is not None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda t: t[:20], id="truncated"),
        pytest.param(lambda t: "fa_production_" + t[5:], id="sdk-key-shape"),
        pytest.param(lambda t: "0" * 40, id="drf-authtoken-shape"),
    ],
)
def test_api_token_auth__bad_token__401(admin: User, mangle: Any) -> None:
    _, token = tokens.create_api_token(admin)
    response = _get(mangle(token))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_api_token_auth__revoked_token__401_at_once(admin: User) -> None:
    _, token = tokens.create_api_token(admin)
    assert _get(token).status_code == 200
    tokens.revoke_api_token(token)
    assert _get(token).status_code == 401


def test_api_token_auth__inactive_user__401(admin: User) -> None:
    _, token = tokens.create_api_token(admin)
    admin.is_active = False
    admin.save()
    assert _get(token).status_code == 401


def test_api_session_auth__signed_in_admin__still_works(admin: User) -> None:
    client = Client()
    client.force_login(admin)
    assert client.get("/api/v1/environments/").status_code == 200


def test_flagapp_api_token_command__create_list_revoke__token_shown_once(admin: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "flagapp_api_token", "create", "--user", "tokadmin", "--name", "ci", stdout=out, stderr=err
    )
    token = out.getvalue().strip()
    assert token.startswith("fapi_") and "\n" not in token
    assert "shown once" in err.getvalue()
    assert _get(token).status_code == 200

    listing = io.StringIO()
    call_command("flagapp_api_token", "list", stdout=listing)
    assert token[5:13] in listing.getvalue()
    assert token[13:] not in listing.getvalue()
    assert "active" in listing.getvalue()

    call_command("flagapp_api_token", "revoke", token[5:13], stderr=io.StringIO())
    assert _get(token).status_code == 401
    listing = io.StringIO()
    call_command("flagapp_api_token", "list", "--user", "tokadmin", stdout=listing)
    assert "revoked" in listing.getvalue()


def test_flagapp_api_token_command__unknown_user_or_token__error(admin: User) -> None:
    with pytest.raises(CommandError, match="no user"):
        call_command("flagapp_api_token", "create", "--user", "nobody")
    with pytest.raises(CommandError, match="no such API token"):
        call_command("flagapp_api_token", "revoke", "ZZZZZZZZ", stderr=io.StringIO())


def test_api_token_admin__list__shows_prefix_never_secret_and_cannot_add(admin: User) -> None:
    row, token = tokens.create_api_token(admin, "deploy-bot")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/flagapp/apitoken/")
    assert page.status_code == 200
    html = page.content.decode()
    assert row.prefix in html and "deploy-bot" in html
    assert token[13:] not in html and row.secret_hash not in html
    assert client.get("/admin/flagapp/apitoken/add/").status_code == 403
    detail = client.get(f"/admin/flagapp/apitoken/{row.pk}/change/").content.decode()
    assert row.secret_hash not in detail

    response = client.post(
        "/admin/flagapp/apitoken/",
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
