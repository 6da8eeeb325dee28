"""FlagMiddleware: request.flags on sync and async stacks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import RequestFactory

from flagapp.middleware import FlagMiddleware, RequestFlags
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)


@pytest.fixture(autouse=True)
def flags(install_flags: Installer) -> None:
    install_flags(
        {
            "ui.on": flag_doc(),
            "ui.off": flag_doc(fallthrough="off"),
            "ui.color": flag_doc("string", {"b": "blue", "g": "green"}, fallthrough="g"),
        }
    )


def _request() -> Any:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    return request


def test_middleware__sync__request_flags_answers():
    seen: dict[str, Any] = {}

    def view(request: Any) -> HttpResponse:
        flags = request.flags
        seen["on"] = flags.is_active("ui.on")
        seen["off"] = "ui.off" in flags
        seen["in"] = "ui.on" in flags
        seen["color"] = flags.get_value("ui.color", "red")
        seen["details"] = flags.evaluate("ui.color", "red").variant
        return HttpResponse("ok")

    response = FlagMiddleware(view)(_request())
    assert response.content == b"ok"
    assert seen == {"on": True, "off": False, "in": True, "color": "green", "details": "g"}


def test_middleware__async_stack__request_flags_attached_and_awaited():
    from asgiref.sync import iscoroutinefunction

    async def view(request: Any) -> HttpResponse:
        return HttpResponse(str(request.flags.is_active("ui.on")))

    middleware = FlagMiddleware(view)
    assert iscoroutinefunction(middleware)
    response = asyncio.run(middleware(_request()))
    assert response.content == b"True"


def test_request_flags__non_string_membership__false():
    assert 3 not in RequestFlags(_request())


def test_middleware__lazy__nothing_evaluated_without_a_check(monkeypatch: pytest.MonkeyPatch):
    from flagapp.evaluation import api

    calls: list[Any] = []
    monkeypatch.setattr(api, "_sampler", lambda *a: calls.append(a))
    FlagMiddleware(lambda request: HttpResponse("ok"))(_request())
    assert calls == []
