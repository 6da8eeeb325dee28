"""override_flag: context manager, decorator (sync, async, TestCase), nesting, typing."""

from __future__ import annotations

import asyncio
import io
import unittest

import pytest

import flagapp
from flagapp import evaluation
from flagapp.testutils import override_flag
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)


@pytest.fixture(autouse=True)
def flags(install_flags: Installer) -> None:
    install_flags({"ui.on": flag_doc(), "ui.off": flag_doc(fallthrough="off")})


def test_override__context_manager__forced_then_restored():
    with override_flag("ui.off", active=True):
        details = flagapp.evaluate("ui.off", False)
        assert (details.value, details.variant, details.reason) == (True, "override", "STATIC")
        assert details.metadata["override"] is True
    assert flagapp.evaluate("ui.off", True).value is False


def test_override__unknown_flag__forced_without_snapshot():
    with override_flag("ui.not-yet", value="v2"):
        assert flagapp.get_value({}, "ui.not-yet", "v1") == "v2"
    assert flagapp.evaluate("ui.not-yet", "v1").error_code == "FLAG_NOT_FOUND"


def test_override__nested__inner_wins_outer_restored():
    with override_flag("ui.on", active=False):
        with override_flag("ui.on", active=True):
            assert flagapp.flag_is_active({}, "ui.on") is True
        assert flagapp.flag_is_active({}, "ui.on") is False
    assert flagapp.flag_is_active({}, "ui.on") is True
    assert evaluation.overrides() == {}


def test_override__exception_inside__still_restored():
    with pytest.raises(ZeroDivisionError), override_flag("ui.on", active=False):
        _ = 1 / 0
    assert flagapp.flag_is_active({}, "ui.on") is True


def test_override__value_of_other_type__type_mismatch_like_a_real_flag():
    with override_flag("ui.color", value="green"):
        details = flagapp.evaluate("ui.color", False)
        assert (details.value, details.error_code) == (False, "TYPE_MISMATCH")
    with override_flag("ui.ratio", value=2.0):
        assert flagapp.get_value({}, "ui.ratio", 0.5) == 2.0


def test_override__integer_value_asked_as_float__type_mismatch_like_a_real_flag():
    """An integer flag asked for a float is TYPE_MISMATCH in the engine; an override whose
    value is an int is an integer flag, so it must answer the same (not 50.0)."""
    with override_flag("ui.ratio", value=50):
        details = flagapp.evaluate("ui.ratio", 0.5)
        assert (details.value, details.error_code) == (0.5, "TYPE_MISMATCH")
        assert flagapp.evaluate("ui.ratio", 1).value == 50


@override_flag("ui.off", active=True)
def test_override__as_sync_decorator__active_inside():
    assert flagapp.flag_is_active({}, "ui.off") is True


def test_override__as_async_decorator__active_inside_only():
    @override_flag("ui.off", active=True)
    async def check() -> bool:
        return flagapp.flag_is_active({}, "ui.off")

    assert asyncio.run(check()) is True
    assert flagapp.flag_is_active({}, "ui.off") is False


def test_override__neither_or_both_arguments__type_error():
    with pytest.raises(TypeError):
        override_flag("ui.on")
    with pytest.raises(TypeError):
        override_flag("ui.on", active=True, value=1)


def test_override__decorating_a_plain_class__type_error():
    with pytest.raises(TypeError):
        override_flag("ui.on", active=True)(object)


def test_override__testcase_class__each_test_method_wrapped():
    results: list[bool] = []

    @override_flag("ui.off", active=True)
    class Case(unittest.TestCase):
        def test_a(self) -> None:
            results.append(flagapp.flag_is_active({}, "ui.off"))

        def helper(self) -> None:  # not a test: left alone
            results.append(flagapp.flag_is_active({}, "ui.off"))

    suite = unittest.TestSuite([Case("test_a")])
    assert unittest.TextTestRunner(stream=io.StringIO()).run(suite).wasSuccessful()
    Case("test_a").helper()
    assert results == [True, False]
