"""flagapp.evaluate: results, typing, contexts, and never raising into the caller."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory, override_settings
from openfeature.evaluation_context import EvaluationContext

import flagapp
from flagapp import evaluation
from flagapp.context import CONTEXT_ATTR, default_context
from flagapp.evaluation import api as evaluation_api
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)

pytestmark = pytest.mark.django_db

STRINGS = {"blue": "blue", "green": "green"}


def _rule(attr: str, op: str, *values: Any, serve: str = "on") -> dict[str, Any]:
    return {
        "id": f"r-{attr}",
        "when": [{"attr": attr, "op": op, "values": list(values)}],
        "serve": {"variant": serve},
    }


def test_evaluate__boolean_flag_on__value_variant_reason_metadata(install_flags: Installer):
    install_flags({"checkout.new-flow": flag_doc()})
    details = flagapp.evaluate("checkout.new-flow", False)
    assert isinstance(details, flagapp.EvaluationDetails)
    assert (details.value, details.variant, details.reason, details.error_code) == (
        True,
        "on",
        "STATIC",
        None,
    )
    assert details.metadata["snapshotVersion"] == 1
    assert details.metadata["owner"] == "tests"


def test_evaluate__wrong_type_default__type_mismatch_and_default(install_flags: Installer):
    install_flags({"checkout.new-flow": flag_doc()})
    details = flagapp.evaluate("checkout.new-flow", "nope")
    assert (details.value, details.reason, details.error_code) == ("nope", "ERROR", "TYPE_MISMATCH")


@pytest.mark.parametrize(
    ("kind", "variants", "default", "expected"),
    [
        ("string", {"a": "blue", "b": "green"}, "red", "blue"),
        ("integer", {"a": 3, "b": 0}, 10, 3),
        ("float", {"a": 0.5, "b": 1.5}, 1.0, 0.5),
        ("object", {"a": {"x": [1]}, "b": {}}, {}, {"x": [1]}),
    ],
)
def test_evaluate__each_kind__value_of_that_kind(
    install_flags: Installer, kind: str, variants: dict[str, Any], default: Any, expected: Any
):
    install_flags({"x.flag": flag_doc(kind, variants, fallthrough="a")})
    assert flagapp.evaluate("x.flag", default).value == expected
    # an int default asks for an integer: a float flag refuses it
    if kind == "float":
        assert flagapp.evaluate("x.flag", 1).error_code == "TYPE_MISMATCH"


def test_evaluate__integral_float_variant__served_as_float(install_flags: Installer):
    install_flags({"x.ratio": flag_doc("float", {"a": 2.0}, fallthrough="a")})
    value = flagapp.evaluate("x.ratio", 0.5).value
    assert value == 2.0 and type(value) is float


def test_evaluate__explicit_kind__overrides_default_type(install_flags: Installer):
    install_flags({"x.color": flag_doc("string", STRINGS, fallthrough="blue")})
    assert flagapp.evaluate("x.color", None, kind="string").value == "blue"
    assert flagapp.evaluate("x.color", None, kind="boolean").error_code == "TYPE_MISMATCH"


def test_evaluate__unknown_key__flag_not_found_and_default(install_flags: Installer):
    install_flags({"checkout.new-flow": flag_doc()})
    details = flagapp.evaluate("checkout.other", True)
    assert (details.value, details.error_code) == (True, "FLAG_NOT_FOUND")


def test_evaluate__disabled_flag__caller_default_reason_disabled(install_flags: Installer):
    install_flags({"checkout.new-flow": flag_doc(enabled=False)})
    details = flagapp.evaluate("checkout.new-flow", True)
    assert (details.value, details.reason, details.error_code) == (True, "DISABLED", None)


def test_evaluate__no_snapshot_anywhere__flag_not_found_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="flagapp")
    with override_settings(LOGGING_CONFIG=None):
        logging.getLogger("flagapp").propagate = True
        first = flagapp.evaluate("checkout.new-flow", False)
        evaluation.expire()
        flagapp.evaluate("checkout.new-flow", False)
    assert (first.value, first.error_code) == (False, "FLAG_NOT_FOUND")
    warnings = [r for r in caplog.records if "no snapshot published" in r.getMessage()]
    assert len(warnings) == 1


def test_evaluate__environment_argument__reads_that_environment(install_flags: Installer):
    install_flags({"x.flag": flag_doc(fallthrough="on")}, environment="production")
    install_flags({"x.flag": flag_doc(fallthrough="off")}, environment="staging")
    assert flagapp.evaluate("x.flag", False).value is True
    assert flagapp.evaluate("x.flag", True, environment="staging").value is False


def test_evaluate__setting_environment__default_environment_follows(install_flags: Installer):
    install_flags({"x.flag": flag_doc(fallthrough="off")}, environment="staging")
    install_flags({"x.flag": flag_doc(fallthrough="on")}, environment="production")
    with override_settings(FLAGAPP={"ENVIRONMENT": "staging"}):
        assert flagapp.evaluate("x.flag", True).value is False
    assert flagapp.evaluate("x.flag", False).value is True


def test_evaluate__mapping_context__targeting_rules_apply(install_flags: Installer):
    install_flags({"x.flag": flag_doc(rules=[_rule("plan", "in", "pro")], fallthrough="off")})
    assert flagapp.evaluate("x.flag", False, {"targetingKey": "u1", "plan": "pro"}).value is True
    details = flagapp.evaluate("x.flag", True, {"targetingKey": "u1", "plan": "free"})
    assert (details.value, details.reason) == (False, "DEFAULT")


def test_evaluate__openfeature_context__attributes_and_targeting_key(install_flags: Installer):
    install_flags(
        {"x.flag": flag_doc(rules=[_rule("targetingKey", "eq", "u9")], fallthrough="off")}
    )
    ctx = EvaluationContext("u9", {"plan": "pro"})
    assert flagapp.evaluate("x.flag", False, ctx).value is True


def test_evaluate__unusable_context__invalid_context_and_default(install_flags: Installer):
    install_flags({"x.flag": flag_doc()})
    details = flagapp.evaluate("x.flag", False, 42)
    assert (details.value, details.reason, details.error_code) == (
        False,
        "ERROR",
        "INVALID_CONTEXT",
    )


def test_evaluate__engine_raises__general_error_and_default(
    install_flags: Installer, monkeypatch: pytest.MonkeyPatch
):
    install_flags({"x.flag": flag_doc()})

    def boom(*args: Any) -> Any:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(evaluation_api, "engine_evaluate", boom)
    details = flagapp.evaluate("x.flag", False)
    assert (details.value, details.error_code) == (False, "GENERAL")
    assert "exploded" in (details.error_message or "")


def test_evaluate__rollout_without_targeting_key__targeting_key_missing(install_flags: Installer):
    rollout = {
        "rollout": {"weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 1}]}
    }
    install_flags({"x.flag": flag_doc(fallthrough=rollout)})
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    details = flagapp.evaluate("x.flag", False, request)
    assert (details.value, details.error_code) == (False, "TARGETING_KEY_MISSING")


def test_helpers__flag_is_active_and_get_value__follow_evaluate(install_flags: Installer):
    install_flags(
        {
            "x.on": flag_doc(),
            "x.off": flag_doc(fallthrough="off"),
            "x.color": flag_doc("string", STRINGS, fallthrough="green"),
        }
    )
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    assert flagapp.flag_is_active(request, "x.on") is True
    assert flagapp.flag_is_active(request, "x.off") is False
    assert flagapp.flag_is_active(request, "x.color") is False  # not a boolean flag
    assert flagapp.flag_is_active(request, "x.missing") is False
    assert flagapp.get_value(request, "x.color", "red") == "green"
    assert flagapp.get_value(request, "x.missing", "red") == "red"


# ------------------------------------------------------------------ request -> context


def _user(username: str = "ann", email: str = "ann@Example.COM", **kw: Any) -> User:
    return User.objects.create_user(username, email=email, password="x", **kw)


def test_context__signed_in_user__pk_key_and_attributes():
    user = _user(is_staff=True)
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3")
    request.user = user
    ctx = default_context(request)
    assert ctx["targetingKey"] == str(user.pk)
    assert ctx["is_staff"] is True and ctx["authenticated"] is True
    assert ctx["email_domain"] == "example.com"
    assert ctx["username"] == "ann"
    assert ctx["ip"] == "10.1.2.3"
    assert "groups" not in ctx  # no ruleset reads groups: no query for them


def test_context__anonymous_with_session__session_key_is_targeting_key():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.session = SessionStore()
    request.session.save()
    ctx = default_context(request)
    assert ctx["targetingKey"] == request.session.session_key
    assert ctx["authenticated"] is False


def test_context__anonymous_without_session__no_targeting_key():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    assert "targetingKey" not in default_context(request)


def test_context__ruleset_targets_groups__groups_included(install_flags: Installer):
    install_flags(
        {"x.flag": flag_doc(rules=[_rule("groups", "contains", "beta")], fallthrough="off")}
    )
    user = _user()
    user.groups.add(Group.objects.create(name="beta"))
    request = RequestFactory().get("/")
    request.user = user
    assert flagapp.evaluate("x.flag", False, request).value is True
    assert request._flagapp_context["groups"] == ["beta"]  # type: ignore[attr-defined]
    other = RequestFactory().get("/")
    other.user = _user("bob", "bob@x.org")
    assert flagapp.evaluate("x.flag", True, other).value is False


def test_context__forwarding_header_setting__first_hop_is_ip():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7, 10.0.0.1"
    )
    request.user = AnonymousUser()
    assert default_context(request)["ip"] == "10.0.0.1"
    with override_settings(FLAGAPP={"CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR"}):
        assert default_context(request)["ip"] == "203.0.113.7"


CALLS: list[Any] = []


def counting_builder(request: Any) -> dict[str, Any]:
    CALLS.append(request)
    return {"targetingKey": "custom", "tenant": request.GET.get("tenant", "")}


def test_context__configured_builder__used_and_cached_per_request(install_flags: Installer):
    install_flags(
        {
            "x.flag": flag_doc(rules=[_rule("tenant", "eq", "acme")], fallthrough="off"),
            "x.other": flag_doc(),
        }
    )
    CALLS.clear()
    with override_settings(
        FLAGAPP={"CONTEXT_BUILDER": "tests.flagapp.evaluation.test_evaluation.counting_builder"}
    ):
        request = RequestFactory().get("/?tenant=acme")
        assert flagapp.evaluate("x.flag", False, request).value is True
        assert flagapp.evaluate("x.other", False, request).value is True
        assert flagapp.evaluate("x.flag", False, request).value is True
    assert len(CALLS) == 1
    assert getattr(request, CONTEXT_ATTR)["tenant"] == "acme"


def test_evaluate__sampling_hook__offered_env_key_context_variant(
    install_flags: Installer, monkeypatch: pytest.MonkeyPatch
):
    install_flags({"x.flag": flag_doc()})
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(evaluation_api, "_sampler", lambda *a: seen.append(a))
    flagapp.evaluate("x.flag", False, {"targetingKey": "u1"})
    assert seen == [("production", "x.flag", {"targetingKey": "u1"}, "on")]


def test_evaluate__sampling_hook_raises__evaluation_unaffected(
    install_flags: Installer, monkeypatch: pytest.MonkeyPatch
):
    install_flags({"x.flag": flag_doc()})

    def broken(*a: Any) -> None:
        raise ValueError("sampler down")

    monkeypatch.setattr(evaluation_api, "_sampler", broken)
    assert flagapp.evaluate("x.flag", False).value is True


def test_async_api__warm_cache__same_answers_as_sync(install_flags: Installer):
    import asyncio

    install_flags({"x.on": flag_doc(), "x.color": flag_doc("string", STRINGS, fallthrough="blue")})
    request = RequestFactory().get("/")
    request.user = AnonymousUser()

    async def check() -> tuple[Any, ...]:
        return (
            await flagapp.aflag_is_active(request, "x.on"),
            await flagapp.aget_value(request, "x.color", "red"),
            (await flagapp.aevaluate("x.missing", 3, {"targetingKey": "u"})).error_code,
        )

    assert asyncio.run(check()) == (True, "blue", "FLAG_NOT_FOUND")
