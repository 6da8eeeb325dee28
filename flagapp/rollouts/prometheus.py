"""A guardrail metric source that queries a Prometheus HTTP API (``/api/v1/query``).

For teams whose error and latency numbers already live in Prometheus: the queries are
``string.Template`` strings (``$flag``, ``$environment``, ``$event``, ``$window``,
``$quantile``) that must return an instant vector with a ``variant`` label. The defaults read
the metrics flagapp's own ``/metrics`` exports (``flagapp.metrics``, docs/observability.md);
override any of them per deployment with ``FLAGAPP["ROLLOUT_PROMETHEUS"]["queries"]``.

Label values are escaped for PromQL string literals, so a flag key can never change the
shape of the query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from string import Template
from typing import Any, Final

import httpx

from .guardrails import MetricKind, VariantSample
from .metrics import MetricQuery, MetricSourceError

__all__ = ["DEFAULT_QUERIES", "PrometheusSource", "promql_string"]

_SEL: Final = 'flag="$flag",environment="$environment"'
_EVT: Final = f'{_SEL},event="$event"'


def _grown(selector: str) -> str:
    """How much the counter(s) ``selector`` grew over the window ending at the query time.

    ``increase()`` alone misses what a series counted before Prometheus first saw it: a
    series that appears in the window (the first exposures of a new variant, the first
    errors of a rollout step) already holds its first batch at its first scrape, and
    ``increase()`` starts from there. So a series absent ``$window`` ago counts whole (it
    started at 0 inside the window), and every other series by ``increase()`` (which also
    handles counter resets: a restarted single-process server).
    """
    return f"(({selector} unless {selector} offset $window) or increase({selector}[$window]))"


#: numerator/denominator for rates; value/count for a latency percentile. The metric names
#: are the ones ``flagapp.metrics`` exports (a Histogram ``flagapp_event_value``).
DEFAULT_QUERIES: Final[dict[str, str]] = {
    "exposures": f"sum by (variant) {_grown(f'flagapp_exposures_total{{{_SEL}}}')}",
    "events": f"sum by (variant) {_grown(f'flagapp_events_total{{{_EVT}}}')}",
    "quantile": (
        "histogram_quantile($quantile, sum by (le, variant) "
        f"{_grown(f'flagapp_event_value_bucket{{{_EVT}}}')})"
    ),
    "count": f"sum by (variant) {_grown(f'flagapp_event_value_count{{{_EVT}}}')}",
}


def promql_string(value: str) -> str:
    """Escape a value for use inside a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusSource:
    """``MetricSource`` backed by a Prometheus-compatible HTTP API (Prometheus, Thanos,
    Mimir, VictoriaMetrics all serve ``/api/v1/query``)."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        queries: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.queries = {**DEFAULT_QUERIES, **(queries or {})}
        self._client = httpx.Client(
            timeout=timeout, headers=dict(headers or {}), transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- MetricSource ------------------------------------------------------------------
    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        spec = query.spec
        window_s = max(1, int((query.until - query.since).total_seconds()))
        params = {
            "flag": promql_string(query.flag_key),
            "environment": promql_string(query.environment),
            "event": promql_string(spec.event_key),
            "window": f"{window_s}s",
            "quantile": f"{spec.percentile / 100:g}",
        }
        if spec.metric in (MetricKind.ERROR_RATE, MetricKind.EVENT_RATE):
            numerators = self._vector("events", params, query.until)
            denominators = self._vector("exposures", params, query.until)
            out: dict[str, VariantSample] = {}
            for variant, exposures in denominators.items():
                n = round(exposures)
                count = round(numerators.get(variant, 0.0))
                out[variant] = VariantSample(variant, n, count / n if n > 0 else None, count)
            return out
        if spec.metric == MetricKind.LATENCY:
            values = self._vector("quantile", params, query.until)
            counts = self._vector("count", params, query.until)
            return {
                variant: VariantSample(variant, round(count), values.get(variant))
                for variant, count in counts.items()
            }
        raise MetricSourceError(f"unsupported metric {spec.metric!r}")

    # -- HTTP --------------------------------------------------------------------------
    def render(self, name: str, params: Mapping[str, str]) -> str:
        try:
            return Template(self.queries[name]).substitute(params)
        except (KeyError, ValueError) as exc:
            raise MetricSourceError(f"bad Prometheus query template {name!r}: {exc}") from exc

    def _vector(self, name: str, params: Mapping[str, str], at: datetime) -> dict[str, float]:
        promql = self.render(name, params)
        try:
            response = self._client.post(
                f"{self.url}/api/v1/query", data={"query": promql, "time": f"{at.timestamp():.3f}"}
            )
        except httpx.HTTPError as exc:
            raise MetricSourceError(f"Prometheus unreachable: {exc}") from exc
        try:
            body: Any = response.json()
        except ValueError:
            raise MetricSourceError(
                f"Prometheus replied {response.status_code} with a non-JSON body"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else None
            raise MetricSourceError(
                f"Prometheus query failed ({response.status_code}): {detail or 'no detail'}"
            )
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise MetricSourceError(
                f"expected an instant vector from {name!r}, got {data.get('resultType')!r}"
            )
        out: dict[str, float] = {}
        for series in data.get("result", []):
            try:
                variant = series["metric"]["variant"]
                value = float(series["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                raise MetricSourceError(f"malformed series in {name!r}: {series!r}") from None
            if math.isnan(value) or math.isinf(value):
                continue  # e.g. histogram_quantile over no data
            out[str(variant)] = value
        return out
