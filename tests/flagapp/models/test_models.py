"""Model invariants that hold however a row is written, settings access, history fields."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

import flagapp
from flagapp.conf import DEFAULTS, settings
from flagapp.exceptions import FlagValidationError, KeyReuseError, VersionConflict
from flagapp.models import Flag, validate_flag_key


@pytest.mark.django_db
def test_flag_save__key_changed__refused(make_flag: Any) -> None:
    flag = Flag.objects.get(pk=make_flag().pk)
    flag.key = "checkout.renamed"
    with pytest.raises(ValidationError):
        flag.save()
    assert Flag.objects.get(pk=flag.pk).key == "checkout.new-flow"


@pytest.mark.django_db
def test_flag_save__kind_changed__refused(make_flag: Any) -> None:
    flag = Flag.objects.get(pk=make_flag().pk)
    flag.kind = "string"
    with pytest.raises(ValidationError):
        flag.save()


@pytest.mark.django_db
def test_history__long_reason__stored_whole(make_flag: Any) -> None:
    reason = "why " * 200
    flag = make_flag(reason=reason)
    assert flag.history.get().history_change_reason == reason.strip()


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("checkout.new-flow", True),
        ("payments.v2", True),
        ("team.domain.purpose", True),
        ("a_b.c-d.e.f", True),
        ("checkout", False),
        ("Checkout.flow", False),
        ("checkout.-flow", False),
        ("a.b.c.d.e", False),
    ],
)
def test_validate_flag_key__default_pattern__team_domain_purpose(key: str, ok: bool) -> None:
    if ok:
        validate_flag_key(key)
    else:
        with pytest.raises(ValidationError):
            validate_flag_key(key)


def test_conf__override_settings__reloaded_and_defaults_kept() -> None:
    assert DEFAULTS["CACHE_ALIAS"] == settings.CACHE_ALIAS
    with override_settings(FLAGAPP={"ENVIRONMENT": "staging"}):
        assert settings.ENVIRONMENT == "staging"
        assert DEFAULTS["RELEASE_EXPIRY_MAX_DAYS"] == settings.RELEASE_EXPIRY_MAX_DAYS
    assert settings.ENVIRONMENT == "production"
    with pytest.raises(AttributeError):
        _ = settings.NO_SUCH_SETTING


def test_exceptions__hierarchy_and_payloads__as_documented() -> None:
    err = FlagValidationError({"rules": "bad", "reason": ["missing"]})
    assert isinstance(err, ValidationError) and isinstance(err, flagapp.exceptions.FlagappError)
    assert err.message_dict == {"rules": ["bad"], "reason": ["missing"]}
    assert FlagValidationError("whole").message_dict == {"__all__": ["whole"]}
    reuse = KeyReuseError("a.b")
    assert isinstance(reuse, FlagValidationError) and "a.b" in reuse.message_dict["key"][0]
    conflict = VersionConflict(7, 5)
    assert conflict.current_version == 7 and "7" in str(conflict)


def test_import_flagapp__no_settings__imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, flagapp\n"
        "heavy = [m for m in ('flagapp.evaluation', 'flagapp.models', 'django.db') "
        "if m in sys.modules]\n"
        "print('ok' if not heavy else heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "ok", out.stdout + out.stderr
