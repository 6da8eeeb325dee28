"""System checks flagapp.E0xx / W0xx."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from flagapp import services
from flagapp.checks import check_database, check_settings

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379",
    }
}


def ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [m.id for m in check_settings()]  # type: ignore[misc]


def test_check_settings__test_settings__clean() -> None:
    assert ids() == []


def test_check_settings__missing_app__E001() -> None:
    from django.conf import settings

    apps = [a for a in settings.INSTALLED_APPS if a != "simple_history"]
    with override_settings(INSTALLED_APPS=apps):
        assert "flagapp.E001" in [m.id for m in check_settings()]


def test_check_settings__unknown_key__E002() -> None:
    assert ids(FLAGAPP={"ENVIRONMNET": "x", "SINGLE_PROCESS": True}) == ["flagapp.E002"]


def test_check_settings__not_a_dict__E002() -> None:
    assert ids(FLAGAPP=["x"]) == ["flagapp.E002"]


def test_check_settings__bad_pattern__E003() -> None:
    assert ids(FLAGAPP={"FLAG_KEY_PATTERN": "(", "SINGLE_PROCESS": True}) == ["flagapp.E003"]


def test_check_settings__unknown_cache_alias__E004() -> None:
    assert ids(FLAGAPP={"CACHE_ALIAS": "flags"}) == ["flagapp.E004"]


@pytest.mark.parametrize("value", [0, -1, "1", True])
def test_check_settings__bad_interval__E005(value: Any) -> None:
    assert ids(FLAGAPP={"CACHE_CHECK_INTERVAL": value, "SINGLE_PROCESS": True}) == ["flagapp.E005"]


def test_check_settings__bad_expiry_days__E006() -> None:
    assert ids(FLAGAPP={"RELEASE_EXPIRY_MAX_DAYS": 0, "SINGLE_PROCESS": True}) == ["flagapp.E006"]


def test_check_settings__per_process_cache_in_production__W001() -> None:
    assert ids(FLAGAPP={}, CACHES=LOCMEM, DEBUG=False) == ["flagapp.W001"]
    assert ids(FLAGAPP={}, CACHES=LOCMEM, DEBUG=True) == []
    assert ids(FLAGAPP={}, CACHES=REDIS, DEBUG=False) == []
    assert ids(FLAGAPP={"SINGLE_PROCESS": True}, CACHES=LOCMEM, DEBUG=False) == []


def test_check_settings__per_process_cache__W001_explains_the_query_trade_off() -> None:
    """Issue 10 finding 2: with a per-process cache changes still arrive (one query per
    check); the warning says what that costs and what a shared cache buys."""
    with override_settings(FLAGAPP={}, CACHES=LOCMEM, DEBUG=False):
        (message,) = check_settings()
    text = f"{message.msg} {message.hint}"
    assert message.id == "flagapp.W001"
    assert "query" in text and "CACHE_CHECK_INTERVAL" in text and "shared cache" in text


def test_check_settings__shared_cache_forced_on_locmem__W001_even_in_debug() -> None:
    flagapp = {"SHARED_CACHE": True, "SINGLE_PROCESS": True}
    with override_settings(FLAGAPP=flagapp, CACHES=LOCMEM, DEBUG=True):
        (message,) = check_settings()
    assert message.id == "flagapp.W001" and "never served" in message.msg
    assert ids(FLAGAPP={"SHARED_CACHE": True}, CACHES=REDIS) == []


def test_check_settings__no_history_middleware__W002() -> None:
    from django.conf import settings

    mw = [m for m in settings.MIDDLEWARE if "simple_history" not in m]
    assert ids(MIDDLEWARE=mw) == ["flagapp.W002"]


@pytest.mark.django_db
def test_check_database__environment_setting_unknown__W003() -> None:
    assert check_database(databases=["default"]) == []  # no environments yet: nothing to say
    services.create_environment(key="staging", name="Staging", actor=None, reason="x")
    assert [m.id for m in check_database(databases=["default"])] == ["flagapp.W003"]
    services.create_environment(key="production", name="Production", actor=None, reason="x")
    assert check_database(databases=["default"]) == []
    assert check_database(databases=None) == []


def test_check_command__flagapp_checks_registered() -> None:
    from django.core.checks.registry import registry

    assert check_settings in registry.get_checks()


@pytest.mark.parametrize(
    ("origins", "max_age", "problem"),
    [
        ("https://a.example", 600, "must be a list of origins, not str"),
        (["https://a.example/"], 600, "[0] is 'https://a.example/', which is not an origin"),
        (["https://ok.example", "a.example"], 600, "[1] is 'a.example', which is not an origin"),
        (["ftp://a.example"], 600, "which is not an origin"),
        (["https://a.example:99999"], 600, "port out of range"),
        (["*", "https://a.example"], 600, '"*" alone allows every origin'),
        ([3], 600, "[0] must be a string, not int"),
        (["https://a.example"], -1, "OFREP_CORS_MAX_AGE'] must be a non-negative integer"),
    ],
)
def test_check_settings__bad_cors_origins__E008_naming_the_entry(
    origins: Any, max_age: Any, problem: str
) -> None:
    from django.conf import settings

    flagapp = {**settings.FLAGAPP, "OFREP_CORS_ORIGINS": origins, "OFREP_CORS_MAX_AGE": max_age}
    with override_settings(FLAGAPP=flagapp):
        messages = [m for m in check_settings() if m.id == "flagapp.E008"]  # type: ignore[misc]
    assert len(messages) == 1 and problem in messages[0].msg


@pytest.mark.parametrize(
    "origins",
    [[], ["*"], ["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"]],
)
def test_check_settings__good_cors_origins__clean(origins: list[str]) -> None:
    from django.conf import settings

    assert ids(FLAGAPP={**settings.FLAGAPP, "OFREP_CORS_ORIGINS": origins}) == []
