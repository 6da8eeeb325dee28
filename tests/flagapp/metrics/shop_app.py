"""A Django app's own views, for tests/flagapp/metrics/test_django_views_live.py (a
urlconf served by uvicorn: every flagapp surface plus these).

- ``/checkout/?user=u7[&degraded=1]``: the guarded rollout's flag through
  ``flagapp.flag_is_active``; the view reports its duration with
  ``flagapp.track(request, "latency_ms", ms)`` and a failure with ``flagapp.track(request,
  "error")``. The duration is simulated (a seeded draw, not a sleep, so the test stays short):
  20-90 ms, and for the treatment 400-900 ms with 30% errors when ``degraded=1`` (the
  treatment's code path broke), against 1% errors otherwise.
- ``/shop/?user=u7``: the experiment's flag through ``{% flag %}`` in a template, and a
  Django-only flag ("shop.banner", nothing reads its exposures) through ``flagapp.get_value``.
- ``/buy/?user=u7``: the experiment's conversion, ``flagapp.track(request, "purchase")``.
- ``/flush/``: ``flagapp.flush_usage()`` (what a worker loop would call; the test uses it to
  store what each server process still buffers).

The user is named by the ``user`` query parameter (``CONTEXT_BUILDER`` =
``tests.flagapp.exposure_views.user_context``).
"""

from __future__ import annotations

import random

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import URLPattern, URLResolver, path

import flagapp
from tests.urls import urlpatterns as base_patterns

GUARDED = "shop.fast-checkout"
EXPERIMENT = "shop.green-button"
BANNER = "shop.banner"

_TEMPLATE = '{% load flagapp %}{% flag "shop.green-button" %}green{% else %}grey{% endflag %}'


def checkout(request: HttpRequest) -> HttpResponse:
    on = flagapp.flag_is_active(request, GUARDED)
    rng = random.Random(f"{request.GET.get('user')}/{request.GET.get('n')}")
    degraded = on and request.GET.get("degraded") == "1"
    latency_ms = rng.uniform(400, 900) if degraded else rng.uniform(20, 90)
    flagapp.track(request, "latency_ms", latency_ms)
    if rng.random() < (0.3 if degraded else 0.01):
        flagapp.track(request, "error")
    return HttpResponse("on" if on else "off")


def shop(request: HttpRequest) -> HttpResponse:
    banner = flagapp.get_value(request, BANNER, False)
    body = engines["django"].from_string(_TEMPLATE).render({}, request)
    return HttpResponse(f"{body} {'banner' if banner else ''}".strip())


def buy(request: HttpRequest) -> HttpResponse:
    flagapp.track(request, "purchase")
    return HttpResponse("thanks")


def flush(request: HttpRequest) -> HttpResponse:
    flagapp.flush_usage()
    return HttpResponse("flushed")


urlpatterns: list[URLPattern | URLResolver] = [
    path("checkout/", checkout),
    path("shop/", shop),
    path("buy/", buy),
    path("flush/", flush),
    *base_patterns,
]
