"""The deployment namespace (issue 10 finding 3): ``flagapp.conf.namespace()`` and where it
is used — shared-cache keys, the Redis channel, rate-limit buckets."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from flagapp.conf import namespace
from flagapp.sdk import notifier, ratelimit
from flagapp.snapshot import cache_version_key


def _with_database(monkeypatch: pytest.MonkeyPatch, **db: str) -> None:
    settings_dict = dict(connections["default"].settings_dict)
    settings_dict.update(db)
    monkeypatch.setattr(connections["default"], "settings_dict", settings_dict)


def test_namespace__default__derived_from_database_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg = {"ENGINE": "django.db.backends.postgresql", "HOST": "db", "PORT": "5432"}
    _with_database(monkeypatch, NAME="flags_a", **pg)
    first = namespace()
    assert first == namespace() and len(first) == 12
    _with_database(monkeypatch, NAME="flags_b", **pg)
    assert namespace() != first  # another database: another deployment


def test_namespace__file_sqlite__same_for_relative_and_absolute_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    _with_database(monkeypatch, ENGINE="django.db.backends.sqlite3", NAME="db.sqlite3")
    relative = namespace()
    _with_database(
        monkeypatch, ENGINE="django.db.backends.sqlite3", NAME=str(tmp_path / "db.sqlite3")
    )
    assert namespace() == relative


def test_namespace__in_memory_sqlite__per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """No two processes share an in-memory database: they are never one deployment."""
    _with_database(monkeypatch, ENGINE="django.db.backends.sqlite3", NAME=":memory:")
    here = namespace()
    monkeypatch.setattr(os, "getpid", lambda: 999_999_999)
    assert namespace() != here


def test_namespace__setting__used_in_keys_channel_and_buckets() -> None:
    with override_settings(FLAGAPP={"NAMESPACE": "blue"}):
        assert namespace() == "blue"
        assert cache_version_key("production") == "flagapp:blue:snapshot:production:version"
        assert notifier.channel() == "flagapp:blue:snapshots"
        assert ratelimit._bucket_name("ofrep", "7") == "flagapp:blue:rl:ofrep:7"


def test_rate_limit__same_key_id_in_two_deployments__separate_buckets() -> None:
    """Key ids are small integers: deployment A's key 7 must not drain deployment B's."""
    limits = {"RATE_LIMITS": {"sdk": {"rate": 0.001, "burst": 2}}, "RATE_LIMIT_STORE": "cache"}
    with override_settings(FLAGAPP={**limits, "NAMESPACE": "deploy-a"}):
        ratelimit.reset("sdk", "7")
        assert [ratelimit.check("sdk", "7").allowed for _ in range(3)] == [True, True, False]
    with override_settings(FLAGAPP={**limits, "NAMESPACE": "deploy-b"}):
        ratelimit.reset("sdk", "7")
        assert ratelimit.check("sdk", "7").allowed
