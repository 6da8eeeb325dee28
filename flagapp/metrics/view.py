"""``GET /metrics``: the Prometheus exposition of :mod:`flagapp.metrics`, for a scraper whose
address is in ``FLAGAPP["METRICS_ALLOW"]`` (default loopback) or that sends
``Authorization: Bearer <METRICS_TOKEN>`` (docs/observability.md, "Who may scrape").

Why a module of its own: :mod:`flagapp.metrics` is imported by the publish chain, and the
client address comes from ``flagapp.evaluation.context`` (``CLIENT_IP_HEADER``), whose
package imports the publish chain.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse

from flagapp.conf import settings
from flagapp.evaluation.context import client_ip
from flagapp.metrics import AVAILABLE, allowed_networks, scrape

__all__ = ["metrics_view"]


def _address_allowed(address: str | None, allow: Sequence[str]) -> bool:
    if not address or not allow:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allowed_networks(tuple(allow)) if net.version == ip.version)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scraper may read; else the 401/403 answer (never echoing a token)."""
    token = settings.get("METRICS_TOKEN")
    header = request.headers.get("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), str(token).encode())
    ):
        return None
    address = client_ip(request)
    if _address_allowed(address, settings.get("METRICS_ALLOW") or ()):
        return None
    if token and header:
        response = HttpResponse(
            "invalid bearer token for /metrics\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="flagapp metrics"'
        return response
    who = address or "this client"
    if token:
        message = f"/metrics: send the bearer token (METRICS_TOKEN); {who} is not in METRICS_ALLOW"
    else:
        message = f"/metrics: {who} is not in FLAGAPP['METRICS_ALLOW'] (or set METRICS_TOKEN)"
    return HttpResponse(message + "\n", status=403, content_type="text/plain")


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus exposition, for an allowed address or a bearer token."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not AVAILABLE:
        return HttpResponse(
            "prometheus-client is not installed: pip install 'django-flagapp[metrics]'\n",
            status=501,
            content_type="text/plain",
        )
    refused = _refusal(request)
    if refused is not None:
        return refused
    started = time.perf_counter()
    body, content_type = scrape(request.headers.get("Accept"))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    response["X-Flagapp-Scrape-Seconds"] = f"{time.perf_counter() - started:.4f}"
    return response
