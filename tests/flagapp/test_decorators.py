"""@flag_required, FlagRequiredMixin and FlagPermission: sync and async, negation, redirects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse
from django.test import RequestFactory
from django.views import View
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from flagapp.decorators import flag_required
from flagapp.mixins import FlagRequiredMixin
from flagapp.permissions import FlagPermission
from flagapp.testutils import override_flag
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def flags(install_flags: Installer) -> None:
    install_flags(
        {
            "ui.on": flag_doc(),
            "ui.off": flag_doc(fallthrough="off"),
            "ui.staff": flag_doc(
                rules=[
                    {
                        "id": "r1",
                        "when": [{"attr": "is_staff", "op": "eq", "values": [True]}],
                        "serve": {"variant": "on"},
                    }
                ],
                fallthrough="off",
            ),
        }
    )


def _request(user: Any = None) -> Any:
    request = RequestFactory().get("/page/")
    request.user = user or AnonymousUser()
    return request


def ok_view(request: Any) -> HttpResponse:
    return HttpResponse("ok")


async def async_ok_view(request: Any) -> HttpResponse:
    return HttpResponse("async ok")


def test_flag_required__flag_on__view_runs():
    assert flag_required("ui.on")(ok_view)(_request()).content == b"ok"


@pytest.mark.parametrize("spec", ["ui.off", "ui.missing", "!ui.on"])
def test_flag_required__requirement_unmet__404(spec: str):
    with pytest.raises(Http404):
        flag_required(spec)(ok_view)(_request())


def test_flag_required__negated_and_flag_off__view_runs():
    assert flag_required("!ui.off")(ok_view)(_request()).content == b"ok"


def test_flag_required__redirect_to__redirects_instead_of_404():
    response = flag_required("ui.off", redirect_to="/elsewhere/")(ok_view)(_request())
    assert (response.status_code, response["Location"]) == (302, "/elsewhere/")


def test_flag_required__targeted_flag__follows_the_user():
    staff = User.objects.create_user("s", password="x", is_staff=True)
    view = flag_required("ui.staff")(ok_view)
    assert view(_request(staff)).status_code == 200
    with pytest.raises(Http404):
        view(_request(User.objects.create_user("n", password="x")))


def test_flag_required__keeps_view_identity():
    wrapped = flag_required("ui.on")(ok_view)
    assert wrapped.__name__ == "ok_view" and wrapped.__wrapped__ is ok_view  # type: ignore[attr-defined]


def test_flag_required__async_view__stays_async_and_checks():
    from asgiref.sync import iscoroutinefunction

    view = flag_required("ui.on")(async_ok_view)
    assert iscoroutinefunction(view)
    assert asyncio.run(view(_request())).content == b"async ok"
    with pytest.raises(Http404):
        asyncio.run(flag_required("ui.off")(async_ok_view)(_request()))


@pytest.mark.django_db(transaction=True)
def test_flag_required__async_view_cold_cache__snapshot_loaded_off_the_event_loop():
    """Cold: loading the snapshot queries the database, which Django forbids on the event
    loop (SynchronousOnlyOperation would leave the flag FLAG_NOT_FOUND, i.e. a 404)."""
    from django.core.cache import caches

    from flagapp import evaluation
    from tests.flagapp.eval_helpers import make_flag, publish

    make_flag("ui.fresh")
    publish()
    evaluation.clear_cache()
    caches["default"].clear()  # a cold process and cache: the document comes from the DB
    response = asyncio.run(flag_required("ui.fresh")(async_ok_view)(_request()))
    assert response.status_code == 200


def test_flag_required__override_flag__forces_access():
    with override_flag("ui.off", active=True):
        assert flag_required("ui.off")(ok_view)(_request()).status_code == 200


class OnPage(FlagRequiredMixin, View):
    required_flag = "ui.on"

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("cbv")


class OffPage(OnPage):
    required_flag = "ui.off"


class OffPageRedirect(OnPage):
    required_flag = "ui.off"
    flag_redirect_to = "/old/"


class NegatedPage(OnPage):
    required_flag = "!ui.off"


class AsyncPage(FlagRequiredMixin, View):
    required_flag = "ui.on"

    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse("async cbv")


class AsyncOffPage(AsyncPage):
    required_flag = "ui.off"


class NoFlagPage(FlagRequiredMixin, View):
    pass


def test_mixin__flag_on__dispatches():
    assert OnPage.as_view()(_request()).content == b"cbv"
    assert NegatedPage.as_view()(_request()).content == b"cbv"


def test_mixin__flag_off__404_or_redirect():
    with pytest.raises(Http404):
        OffPage.as_view()(_request())
    assert OffPageRedirect.as_view()(_request())["Location"] == "/old/"


def test_mixin__async_view__checks_and_awaits():
    assert asyncio.run(AsyncPage.as_view()(_request())).content == b"async cbv"
    with pytest.raises(Http404):
        asyncio.run(AsyncOffPage.as_view()(_request()))


def test_mixin__no_required_flag__improperly_configured():
    with pytest.raises(ImproperlyConfigured):
        NoFlagPage.as_view()(_request())


class BetaApi(APIView):
    permission_classes = [FlagPermission]
    required_flag = "ui.staff"

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class BetaApiFactory(APIView):
    permission_classes = [FlagPermission.for_flag("!ui.off")]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class BrokenApi(APIView):
    permission_classes = [FlagPermission]

    def get(self, request: Any) -> Response:
        return Response({})


def test_drf_permission__view_attribute__targets_the_authenticated_user():
    factory = APIRequestFactory()
    staff = User.objects.create_user("s", password="x", is_staff=True)
    request = factory.get("/api/beta/")
    force_authenticate(request, user=staff)
    assert BetaApi.as_view()(request).status_code == 200
    request = factory.get("/api/beta/")
    force_authenticate(request, user=User.objects.create_user("n", password="x"))
    assert BetaApi.as_view()(request).status_code == 404


def test_drf_permission__for_flag_negated__allows_while_off():
    request = APIRequestFactory().get("/api/beta/")
    assert BetaApiFactory.as_view()(request).status_code == 200
    with override_flag("ui.off", active=True):
        request = APIRequestFactory().get("/api/beta/")
        assert BetaApiFactory.as_view()(request).status_code == 404


def test_drf_permission__no_flag_configured__improperly_configured():
    with pytest.raises(ImproperlyConfigured):
        BrokenApi.as_view()(APIRequestFactory().get("/api/x/"))
