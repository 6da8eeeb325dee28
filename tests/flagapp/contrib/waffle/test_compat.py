"""flagapp.contrib.waffle: waffle's API answered by flagapp (in this process, without the
``import waffle`` alias, which test_project.py covers in a separate process because the
real django-waffle is loaded here)."""

from __future__ import annotations

import random
import unittest
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import Http404, HttpResponse
from django.template import Context, Engine, TemplateSyntaxError
from django.test import RequestFactory
from django.views import View

from flagapp.contrib import waffle as compat
from flagapp.contrib.waffle.context import waffle_context
from flagapp.contrib.waffle.decorators import waffle_flag, waffle_switch
from flagapp.contrib.waffle.keys import flag_key, sample_key, switch_key
from flagapp.contrib.waffle.middleware import WaffleMiddleware
from flagapp.contrib.waffle.mixins import WaffleFlagMixin, WaffleSampleMixin, WaffleSwitchMixin
from flagapp.contrib.waffle.testutils import override_flag, override_sample, override_switch
from flagapp.testutils import reset_flag_cache
from openfeature_provider.engine import parse_ruleset

factory = RequestFactory()


def _flag(enabled: bool = True, fallthrough: str = "off", rules: Any = None) -> dict[str, Any]:
    return {
        "kind": "boolean",
        "enabled": enabled,
        "variants": {"on": True, "off": False},
        "fallthrough": {"variant": fallthrough},
        "rules": rules or [],
    }


@pytest.fixture(autouse=True)
def ruleset(settings: Any) -> Iterator[None]:
    """A published-looking ruleset installed straight into the evaluation cache."""
    from flagapp import evaluation

    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "CONTEXT_BUILDER": "flagapp.contrib.waffle.context.waffle_context",
    }
    testing = [
        {
            "id": f"waffle-testing-{v}",
            "when": [{"attr": "waffle_testing:beta-ui", "op": "eq", "values": [v == "on"]}],
            "serve": {"variant": v},
        }
        for v in ("on", "off")
    ]
    doc = {
        "format": 1,
        "environment": "production",
        "version": 1,
        "flags": {
            flag_key("on_flag"): _flag(fallthrough="on"),
            flag_key("off_flag"): _flag(),
            flag_key("killed"): _flag(enabled=False, fallthrough="on"),
            flag_key("beta_ui"): _flag(rules=testing),
            flag_key("german"): _flag(
                rules=[
                    {
                        "id": "waffle-languages",
                        "when": [{"attr": "language", "op": "in", "values": ["de"]}],
                        "serve": {"variant": "on"},
                    }
                ]
            ),
            switch_key("on_switch"): _flag(fallthrough="on"),
            switch_key("off_switch"): _flag(),
            switch_key("killed_switch"): _flag(enabled=False, fallthrough="on"),
            sample_key("third"): {
                "kind": "float",
                "enabled": True,
                "variants": {"percent": 30.0},
                "fallthrough": {"variant": "percent"},
            },
        },
    }
    reset_flag_cache()
    evaluation.install("production", parse_ruleset(doc))
    yield
    reset_flag_cache()


def req(path: str = "/", **kwargs: Any) -> Any:
    request = factory.get(path, **kwargs)
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    return request


# --- functions --------------------------------------------------------------------------


def test_flag_is_active__flagapp_answers() -> None:
    assert compat.flag_is_active(req(), "on_flag") is True
    assert compat.flag_is_active(req(), "off_flag") is False


def test_flag_is_active__unknown__waffle_flag_default(settings: Any) -> None:
    assert compat.flag_is_active(req(), "nope") is False
    settings.WAFFLE_FLAG_DEFAULT = True
    assert compat.flag_is_active(req(), "nope") is True


def test_flag_is_active__disabled_flag__false_even_with_flag_default_true(settings: Any) -> None:
    """everyone=No is imported as a disabled flag; WAFFLE_FLAG_DEFAULT is only for missing
    flags, as in waffle."""
    settings.WAFFLE_FLAG_DEFAULT = True
    assert compat.flag_is_active(req(), "killed") is False


def test_flag_is_active__waffle_override_setting__query_parameter_wins(settings: Any) -> None:
    assert compat.flag_is_active(req(data={"off_flag": "1"}), "off_flag") is False
    settings.WAFFLE_OVERRIDE = True
    assert compat.flag_is_active(req(data={"off_flag": "1"}), "off_flag") is True
    assert compat.flag_is_active(req(data={"on_flag": "0"}), "on_flag") is False


def test_flag_is_active__language_code__read_by_the_waffle_context_builder() -> None:
    request = req()
    request.LANGUAGE_CODE = "de"
    assert compat.flag_is_active(request, "german") is True
    request = req()
    request.LANGUAGE_CODE = "fr"
    assert compat.flag_is_active(request, "german") is False


@pytest.mark.parametrize(
    ("kwargs", "cookies", "expected", "persisted"),
    [
        ({"data": {"dwft_beta_ui": "1"}}, {}, True, True),
        ({"data": {"dwft_beta_ui": "0"}}, {"dwft_beta_ui": "True"}, False, False),
        ({"headers": {"dwft-beta-ui": "1"}}, {"dwft_beta_ui": "False"}, True, True),
        ({}, {"dwft_beta_ui": "True"}, True, None),
        ({}, {}, False, None),
    ],
)
def test_flag_is_active__testing_mode__query_then_header_then_cookie(
    kwargs: dict[str, Any], cookies: dict[str, str], expected: bool, persisted: bool | None
) -> None:
    request = req(**kwargs)
    request.COOKIES.update(cookies)
    assert compat.flag_is_active(request, "beta_ui") is expected
    assert getattr(request, "waffle_tests", {}).get("beta_ui") == persisted
    response = WaffleMiddleware(lambda r: HttpResponse())(request)
    if persisted is None:
        assert "dwft_beta_ui" not in response.cookies
    else:
        assert response.cookies["dwft_beta_ui"].value == str(persisted)


def test_flag_is_active__testing_parameter_for_a_flag_without_testing__ignored() -> None:
    request = req(data={"dwft_off_flag": "1"})
    assert compat.flag_is_active(request, "off_flag") is False
    assert not hasattr(request, "waffle_tests")


def test_switch_is_active__flagapp_answers_and_defaults(settings: Any) -> None:
    assert compat.switch_is_active("on_switch") is True
    assert compat.switch_is_active("off_switch") is False
    assert compat.switch_is_active("killed_switch") is False
    assert compat.switch_is_active("nope") is False
    settings.WAFFLE_SWITCH_DEFAULT = True
    assert compat.switch_is_active("nope") is True


def test_sample_is_active__random_per_call_at_the_flags_percentage(settings: Any) -> None:
    random.seed(16)
    share = sum(compat.sample_is_active("third") for _ in range(4000)) / 40
    assert 27 <= share <= 33
    assert compat.sample_is_active("nope") is False
    settings.WAFFLE_SAMPLE_DEFAULT = True
    assert compat.sample_is_active("nope") is True


def test_waffle_model_getters__explain_there_are_no_models() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="no waffle models"):
        compat.get_waffle_flag_model()


def test_waffle_context__default_context_plus_language() -> None:
    from django.contrib.auth.models import User

    request = req()
    request.user = User(pk=7, username="u", is_staff=True)
    request.LANGUAGE_CODE = "de"
    ctx = waffle_context(request)
    assert ctx["targetingKey"] == "7" and ctx["is_staff"] is True and ctx["language"] == "de"


# --- decorators and mixins -------------------------------------------------------------------


def view(request: Any) -> HttpResponse:
    return HttpResponse("ok")


def test_waffle_flag__active_inactive_negated() -> None:
    assert waffle_flag("on_flag")(view)(req()).content == b"ok"
    with pytest.raises(Http404):
        waffle_flag("off_flag")(view)(req())
    assert waffle_flag("!off_flag")(view)(req()).content == b"ok"


def test_waffle_flag__redirect_to_a_url_name(settings: Any) -> None:
    response = waffle_flag("off_flag", redirect_to="flagapp:api-docs")(view)(req())
    assert response.status_code == 302
    with pytest.raises(Http404):  # unreversible: 404 as waffle
        waffle_flag("off_flag", redirect_to="no-such-url")(view)(req())


def test_waffle_switch__active_inactive_negated() -> None:
    assert waffle_switch("on_switch")(view)(req()).content == b"ok"
    with pytest.raises(Http404):
        waffle_switch("off_switch")(view)(req())
    assert waffle_switch("!off_switch")(view)(req()).content == b"ok"


class Base(View):
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("ok")


def test_mixins__404_unless_active() -> None:
    flag_on = type("A", (WaffleFlagMixin, Base), {"waffle_flag": "on_flag"}).as_view()
    flag_off = type("B", (WaffleFlagMixin, Base), {"waffle_flag": "off_flag"}).as_view()
    switch_not = type("C", (WaffleSwitchMixin, Base), {"waffle_switch": "!off_switch"}).as_view()
    sample_never = type("D", (WaffleSampleMixin, Base), {"waffle_sample": "nope"}).as_view()
    assert flag_on(req()).status_code == 200
    assert switch_not(req()).status_code == 200
    for v in (flag_off, sample_never):
        with pytest.raises(Http404):
            v(req())


# --- template tags ----------------------------------------------------------------------------

ENGINE = Engine(libraries={"waffle_tags": "flagapp.contrib.waffle.templatetags.waffle_tags"})


def render(source: str, **context: Any) -> str:
    return ENGINE.from_string("{% load waffle_tags %}" + source).render(Context(context))


def test_tags__flag_switch_sample_with_else() -> None:
    assert render('{% flag "on_flag" %}Y{% else %}N{% endflag %}', request=req()) == "Y"
    assert render('{% flag "off_flag" %}Y{% else %}N{% endflag %}', request=req()) == "N"
    assert render("{% switch on_switch %}Y{% endswitch %}") == "Y"
    assert render('{% switch "off_switch" %}Y{% else %}N{% endswitch %}') == "N"
    assert render('{% sample "nope" %}Y{% else %}N{% endsample %}') == "N"


def test_tags__name_from_a_variable() -> None:
    assert render("{% flag name %}Y{% else %}N{% endflag %}", name="on_flag", request=req()) == "Y"


def test_tags__wafflejs__refused_with_the_replacement() -> None:
    with pytest.raises(TemplateSyntaxError, match="OFREP"):
        render("{% wafflejs %}")


# --- testutils ------------------------------------------------------------------------------


def test_override_flag__context_manager_nested_and_restored() -> None:
    with override_flag("off_flag", active=True):
        assert compat.flag_is_active(req(), "off_flag") is True
        with override_flag("off_flag", active=False):
            assert compat.flag_is_active(req(), "off_flag") is False
        assert compat.flag_is_active(req(), "off_flag") is True
    assert compat.flag_is_active(req(), "off_flag") is False


def test_override_flag__active_none__evaluates_normally() -> None:
    with override_flag("on_flag", active=None):
        assert compat.flag_is_active(req(), "on_flag") is True


def test_override_switch_and_sample__forced() -> None:
    with override_switch("off_switch", active=True), override_sample("third", active=False):
        assert compat.switch_is_active("off_switch") is True
        assert not any(compat.sample_is_active("third") for _ in range(50))
    with override_sample("never-imported", active=True):
        assert compat.sample_is_active("never-imported") is True


@override_flag("off_flag", active=True)
def test_override_flag__as_function_decorator() -> None:
    assert compat.flag_is_active(req(), "off_flag") is True


@override_switch("off_switch", active=True)
class OverrideClassTest(unittest.TestCase):
    def test_override_switch__as_testcase_decorator(self) -> None:
        self.assertTrue(compat.switch_is_active("off_switch"))
