"""SDK keys: format, hashing, cached lookup, revocation, the management command."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from flagapp.models import SdkKey
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures

pytestmark = pytest.mark.django_db


def test_create_sdk_key__new_key__token_shown_once_and_only_its_hash_stored(
    environments: dict[str, Any],
) -> None:
    key, token = sdk_keys.create_sdk_key(
        environments["production"], name="web", actor=None, reason="tests"
    )
    assert token.startswith("fa_production_")
    assert len(token.rpartition("_")[2]) == 40
    stored = SdkKey.objects.get(pk=key.pk)
    assert stored.secret_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.secret_hash, stored.public_id, stored.name}
    assert token.rpartition("_")[2].startswith(stored.public_id)


def test_authenticate_token__valid_key__returns_its_environment(
    environments: dict[str, Any],
) -> None:
    _, token = sdk_keys.create_sdk_key("staging", name="svc", actor=None, reason="tests")
    info = keys.authenticate_token(token)
    assert info.environment_key == "staging"


def test_authenticate_token__warm__makes_no_query(
    environments: dict[str, Any], django_assert_num_queries: Any
) -> None:
    _, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    keys.authenticate_token(token)
    with django_assert_num_queries(0):
        for _ in range(5):
            keys.authenticate_token(token)


@pytest.mark.parametrize(
    "token",
    [None, "", "nonsense", "fa_production_short", "fa_production_" + "A" * 40],
)
def test_authenticate_token__missing_or_unknown__401(
    environments: dict[str, Any], token: str | None
) -> None:
    with pytest.raises(keys.AuthFailure) as info:
        keys.authenticate_token(token)
    assert info.value.status == 401


def test_authenticate_token__right_public_id_wrong_secret__401(
    environments: dict[str, Any],
) -> None:
    _, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(keys.AuthFailure):
        keys.authenticate_token(forged)


def test_revoke_sdk_key__warm_cache__refused_at_once(environments: dict[str, Any]) -> None:
    key, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    keys.authenticate_token(token)  # warm
    sdk_keys.revoke_sdk_key(key, actor=None, reason="tests")
    with pytest.raises(keys.AuthFailure) as info:
        keys.authenticate_token(token)
    assert info.value.status == 401
    assert SdkKey.objects.get(pk=key.pk).revoked_at is not None


def test_revoke_sdk_key__redis_notifier__broadcast_on_this_deployments_channel(
    environments: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """keys no longer imports the notifier (issue 12: no keys <-> notifier cycle): the
    revocation goes out through ``flagapp.signals.sdk_key_revoked``, which the notifier
    turns into a message on the namespaced channel."""
    from flagapp.sdk import notifier

    sent: list[tuple[str, dict[str, Any]]] = []

    class FakeRedis:
        def publish(self, channel: str, payload: str) -> None:
            sent.append((channel, json.loads(payload)))

    monkeypatch.setattr(notifier, "_client", FakeRedis)
    key, _ = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    with override_settings(FLAGAPP={"NOTIFIER": "redis", "NAMESPACE": "deployment-a"}):
        sdk_keys.revoke_sdk_key(key, actor=None, reason="tests")
    assert sent == [
        (
            "flagapp:deployment-a:snapshots",
            {"type": "sdk_key_revoked", "origin": notifier._ORIGIN, "public_id": key.public_id},
        )
    ]


def test_authenticate_token__revoked_elsewhere__refused_after_cache_expiry(
    environments: dict[str, Any],
) -> None:
    key, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    with override_settings(FLAGAPP={"SDK_KEY_CACHE_SECONDS": 0}):
        keys.authenticate_token(token)
        # Another process revokes: only the row changes, this process's cache is not told.
        SdkKey.objects.filter(pk=key.pk).update(revoked_at="2026-01-01T00:00:00Z")
        with pytest.raises(keys.AuthFailure):
            keys.authenticate_token(token)


def test_authenticate_token__used__last_used_at_written_coarsely(
    environments: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    key, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    assert key.last_used_at is None
    keys.authenticate_token(token)
    first = SdkKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    with django_assert_max_num_queries(0):
        keys.authenticate_token(token)


def test_command_create__environment__prints_only_a_working_token(
    environments: dict[str, Any],
) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "flagapp_sdk_key",
        "create",
        "--environment",
        "staging",
        "--name",
        "demo",
        stdout=out,
        stderr=err,
    )
    token = out.getvalue().strip()
    assert "\n" not in token
    assert keys.authenticate_token(token).environment_key == "staging"
    assert "shown once" in err.getvalue()


def test_command_create__unknown_environment__error(environments: dict[str, Any]) -> None:
    with pytest.raises(CommandError):
        call_command("flagapp_sdk_key", "create", "--environment", "nope", stdout=io.StringIO())


def test_command_revoke__by_token_or_public_id__key_refused(environments: dict[str, Any]) -> None:
    _key1, token1 = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    key2, token2 = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    call_command("flagapp_sdk_key", "revoke", token1, stdout=io.StringIO(), stderr=io.StringIO())
    call_command(
        "flagapp_sdk_key", "revoke", key2.public_id, stdout=io.StringIO(), stderr=io.StringIO()
    )
    for token in (token1, token2):
        with pytest.raises(keys.AuthFailure):
            keys.authenticate_token(token)
    out = io.StringIO()
    call_command("flagapp_sdk_key", "list", stdout=out)
    assert out.getvalue().count("revoked") == 2
    assert token1 not in out.getvalue()


def test_authenticate_token__cache_expired_but_recently_used__no_write(
    environments: dict[str, Any], django_assert_num_queries: Any
) -> None:
    _key, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    keys.authenticate_token(token)  # records last_used_at
    # The reload's SELECT, no UPDATE.
    with override_settings(FLAGAPP={"SDK_KEY_CACHE_SECONDS": 0}), django_assert_num_queries(1):
        keys.authenticate_token(token)


def test_authenticate_token__db_false_and_cold__needs_database_not_a_query(
    environments: dict[str, Any], django_assert_num_queries: Any
) -> None:
    _key, token = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    with django_assert_num_queries(0), pytest.raises(keys.NeedsDatabase):
        keys.authenticate_token(token, db=False)
    keys.authenticate_token(token)  # warm it
    assert keys.authenticate_token(token, db=False).environment_key == "production"
    # Cache expired (or last_used_at due): an event loop must not query; it is told so.
    with (
        override_settings(FLAGAPP={"SDK_KEY_CACHE_SECONDS": 0}),
        django_assert_num_queries(0),
        pytest.raises(keys.NeedsDatabase),
    ):
        keys.authenticate_token(token, db=False)
    with (
        override_settings(FLAGAPP={"SDK_KEY_LAST_USED_INTERVAL": 0}),
        django_assert_num_queries(0),
        pytest.raises(keys.NeedsDatabase),
    ):
        keys.authenticate_token(token, db=False)
