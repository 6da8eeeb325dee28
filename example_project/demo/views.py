"""Demo pages: each flagapp surface once, on the demo data of ``flagapp_demo``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.generic import TemplateView

import flagapp
from flagapp.context import context_for_request
from flagapp.decorators import flag_required
from flagapp.mixins import FlagRequiredMixin

#: (flag key, the code's default) shown in the table on the index page.
SHOWN_FLAGS: list[tuple[str, Any]] = [
    ("checkout.new-flow", False),
    ("checkout.express-pay", False),
    ("web.ui.theme", "light"),
    ("search.results-limit", 20),
    ("pricing.discount-rate", 0.0),
    ("web.banner.config", {}),
    ("ops.maintenance-mode", False),
]


def _give_visitor_a_key(request: HttpRequest) -> None:
    """Anonymous visitors are bucketed by session key: make sure they have one, so the
    percentage rollouts place them (without it: TARGETING_KEY_MISSING, the code's default)."""
    if not request.user.is_authenticated and not request.session.session_key:
        request.session.save()


def index(request: HttpRequest) -> HttpResponse:
    """Template tags for the page, ``flagapp.evaluate`` for the table of every flag."""
    _give_visitor_a_key(request)
    rows = [flagapp.evaluate(key, default, request) for key, default in SHOWN_FLAGS]
    return render(
        request,
        "demo/index.html",
        {
            "rows": rows,
            "context": context_for_request(request),
            "banner": flagapp.get_value(request, "web.banner.config", {}),
            "limit": flagapp.get_value(request, "search.results-limit", 20),
        },
    )


@flag_required("checkout.new-flow", redirect_to="demo:index")
def new_checkout(request: HttpRequest) -> HttpResponse:
    """Only while ``checkout.new-flow`` is on for this visitor (else back to the index)."""
    return render(request, "demo/new_checkout.html", {})


class ExpressPay(FlagRequiredMixin, TemplateView):
    """A class-based view behind a flag (404 while off)."""

    required_flag = "checkout.express-pay"
    template_name = "demo/new_checkout.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "express": True}


@flag_required("!ops.maintenance-mode")
async def status(request: HttpRequest) -> JsonResponse:
    """An async view: served unless maintenance mode is on."""
    discount = await flagapp.aget_value(request, "pricing.discount-rate", 0.0)
    return JsonResponse({"ok": True, "discount": discount})
