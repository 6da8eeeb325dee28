"""A test urlconf: a small shop whose views check a flag and report conversions the way a
Django app would (``flag_is_active``, ``{% flag %}``, ``@flag_required``,
``FlagRequiredMixin``, ``flagapp.track`` and the async twins). The user is named by the
``user`` query parameter through a ``CONTEXT_BUILDER`` (:func:`user_context`), so a test
can play many users without logging each one in."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import path
from django.views import View

import flagapp
from flagapp.decorators import flag_required
from flagapp.mixins import FlagRequiredMixin

FLAG = "shop.checkout-button"


def user_context(request: HttpRequest) -> dict[str, Any]:
    """CONTEXT_BUILDER of these tests: ``?user=u7`` is user ``u7``."""
    user = request.GET.get("user")
    return {"targetingKey": user} if user else {}


def shop(request: HttpRequest) -> HttpResponse:
    return HttpResponse("green" if flagapp.flag_is_active(request, FLAG) else "grey")


def buy(request: HttpRequest) -> HttpResponse:
    amount = request.GET.get("amount")
    flagapp.track(request, "purchase", float(amount) if amount else None)
    return HttpResponse("thanks")


async def ashop(request: HttpRequest) -> HttpResponse:
    return HttpResponse("green" if await flagapp.aflag_is_active(request, FLAG) else "grey")


async def abuy(request: HttpRequest) -> HttpResponse:
    await flagapp.atrack(request, "purchase")
    return HttpResponse("thanks")


def tagged(request: HttpRequest) -> HttpResponse:
    template = engines["django"].from_string(
        '{% load flagapp %}{% flag "shop.checkout-button" %}green{% else %}grey{% endflag %}'
    )
    return HttpResponse(template.render({}, request))


@flag_required(FLAG)
def decorated(request: HttpRequest) -> HttpResponse:
    return HttpResponse("green")


class Mixed(FlagRequiredMixin, View):
    required_flag = FLAG

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("green")


def unrecorded(request: HttpRequest) -> HttpResponse:
    on = flagapp.flag_is_active(request, FLAG, record=False)
    return HttpResponse("green" if on else "grey")


urlpatterns = [
    path("shop/", shop),
    path("buy/", buy),
    path("ashop/", ashop),
    path("abuy/", abuy),
    path("tagged/", tagged),
    path("decorated/", decorated),
    path("mixed/", Mixed.as_view()),
    path("unrecorded/", unrecorded),
]
