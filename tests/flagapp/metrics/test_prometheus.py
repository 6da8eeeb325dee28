"""PrometheusSource against a local fake Prometheus HTTP API on 127.0.0.1 (the same source
against a real Prometheus scraping a live server: test_prometheus_live.py).

The fake implements the wire format of ``/api/v1/query`` (form POST, JSON envelope,
instant vectors with string sample values, error envelopes); instead of a PromQL engine it
answers exact query strings registered by the test, and records what it was asked, so the
tests pin both the PromQL we send and how replies are parsed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from flagapp.rollouts.guardrails import GuardrailSpec, MetricKind, Status, evaluate_guardrail
from flagapp.rollouts.metrics import MetricQuery, MetricSource, MetricSourceError
from flagapp.rollouts.prometheus import PrometheusSource, promql_string


class FakePrometheus:
    def __init__(self) -> None:
        self.answers: dict[str, list[dict[str, Any]]] = {}
        self.fail_with: tuple[int, dict[str, Any] | str] | None = None
        self.received: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                self._answer(form)

            def do_GET(self) -> None:
                query = self.path.partition("?")[2]
                self._answer({k: v[0] for k, v in parse_qs(query).items()})

            def _answer(self, form: dict[str, str]) -> None:
                if not self.path.startswith("/api/v1/query"):
                    self.send_error(404)
                    return
                fake.received.append(form)
                if fake.fail_with is not None:
                    status, body = fake.fail_with
                    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                else:
                    status = 200
                    result = fake.answers.get(form.get("query", ""), [])
                    raw = json.dumps(
                        {"status": "success", "data": {"resultType": "vector", "result": result}}
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def vector(self, query: str, values: dict[str, str], ts: float = 1.7e9) -> None:
        self.answers[query] = [
            {"metric": {"variant": v}, "value": [ts, value]} for v, value in values.items()
        ]


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


UNTIL = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _query(spec: GuardrailSpec, flag: str = "checkout.new-flow") -> MetricQuery:
    return MetricQuery(flag, "production", spec, UNTIL - timedelta(minutes=5), UNTIL, ("on", "off"))


SEL = 'flag="checkout.new-flow",environment="production"'


def grown(selector: str, window: str) -> str:
    """The counter growth the default queries take: whole for a series born in the window,
    ``increase()`` for the others (pinned here as the exact PromQL text)."""
    return f"(({selector} unless {selector} offset {window}) or increase({selector}[{window}]))"


def test_prometheus_source__error_rate__ratio_per_variant_and_exact_promql(
    prom: FakePrometheus,
) -> None:
    events = "sum by (variant) " + grown(f'flagapp_events_total{{{SEL},event="error"}}', "300s")
    exposures = "sum by (variant) " + grown(f"flagapp_exposures_total{{{SEL}}}", "300s")
    prom.vector(events, {"on": "130.4", "off": "40"})
    prom.vector(exposures, {"on": "4210", "off": "4000.2"})
    with PrometheusSource(prom.url) as source:
        assert isinstance(source, MetricSource)
        samples = source.measure(_query(GuardrailSpec("error_rate", 0.01)))
    assert samples["on"].n == 4210
    assert samples["on"].count == 130
    assert samples["on"].value == pytest.approx(130 / 4210)
    assert samples["off"].value == pytest.approx(40 / 4000)
    assert [r["query"] for r in prom.received] == [events, exposures]
    assert prom.received[0]["time"] == f"{UNTIL.timestamp():.3f}"
    result = evaluate_guardrail(GuardrailSpec("error_rate", 0.01), samples["on"], samples["off"])
    assert result.status is Status.BREACH
    assert result.message == "error_rate 3.1% > 1.0% (n=4,210)"


def test_prometheus_source__latency__quantile_and_count(prom: FakePrometheus) -> None:
    spec = GuardrailSpec(MetricKind.LATENCY, 300.0, event_key="latency_ms", percentile=99)
    source = PrometheusSource(prom.url)
    q = source.render(
        "quantile",
        {
            "flag": "checkout.new-flow",
            "environment": "production",
            "event": "latency_ms",
            "window": "300s",
            "quantile": "0.99",
        },
    )
    bucket = f'flagapp_event_value_bucket{{{SEL},event="latency_ms"}}'
    assert q == f"histogram_quantile(0.99, sum by (le, variant) {grown(bucket, '300s')})"
    prom.vector(q, {"on": "412.5", "off": "NaN"})
    c = source.render(
        "count",
        {
            "flag": "checkout.new-flow",
            "environment": "production",
            "event": "latency_ms",
            "window": "300s",
            "quantile": "0.99",
        },
    )
    prom.vector(c, {"on": "1500", "off": "0"})
    samples = source.measure(_query(spec))
    source.close()
    assert samples["on"].value == pytest.approx(412.5)
    assert samples["on"].n == 1500
    assert samples["off"].value is None  # NaN from an empty histogram is "no data"


def test_prometheus_source__label_with_quote__escaped_in_promql(prom: FakePrometheus) -> None:
    with PrometheusSource(prom.url) as source:
        source.measure(_query(GuardrailSpec("error_rate", 0.01), flag='evil"} or vector(1) #'))
    assert 'flag="evil\\"} or vector(1) #"' in prom.received[0]["query"]
    assert promql_string('a\\b"c') == 'a\\\\b\\"c'


def test_prometheus_source__error_envelope__raises_metric_source_error(
    prom: FakePrometheus,
) -> None:
    prom.fail_with = (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    with (
        PrometheusSource(prom.url) as source,
        pytest.raises(MetricSourceError, match="parse error"),
    ):
        source.measure(_query(GuardrailSpec("error_rate", 0.01)))


def test_prometheus_source__non_json_reply__raises_metric_source_error(
    prom: FakePrometheus,
) -> None:
    prom.fail_with = (502, "<html>bad gateway</html>")
    with PrometheusSource(prom.url) as source, pytest.raises(MetricSourceError, match="502"):
        source.measure(_query(GuardrailSpec("error_rate", 0.01)))


def test_prometheus_source__unreachable__raises_metric_source_error() -> None:
    fake = FakePrometheus()  # bound but never serving, then closed: connection refused
    url = fake.url
    fake.server.server_close()
    with (
        PrometheusSource(url, timeout=1.0) as source,
        pytest.raises(MetricSourceError, match="unreachable"),
    ):
        source.measure(_query(GuardrailSpec("error_rate", 0.01)))


def test_prometheus_source__custom_template__used_verbatim(prom: FakePrometheus) -> None:
    custom = {"exposures": 'sum by (variant) (my_requests{app="$flag"})'}
    prom.vector('sum by (variant) (my_requests{app="checkout.new-flow"})', {"on": "10"})
    with PrometheusSource(prom.url, queries=custom) as source:
        samples = source.measure(_query(GuardrailSpec("error_rate", 0.01)))
    assert samples["on"].n == 10
    assert samples["on"].value == 0.0


def test_prometheus_source__bad_template__raises_metric_source_error(prom: FakePrometheus) -> None:
    source = PrometheusSource(prom.url, queries={"events": "rate($nope[5m])"})
    with source, pytest.raises(MetricSourceError, match="template"):
        source.measure(_query(GuardrailSpec("error_rate", 0.01)))


def test_controller__prometheus_plan_breach__rolled_back_with_prometheus_numbers(
    prom: FakePrometheus, settings: Any, make_flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp import services
    from flagapp.rollouts import controller

    settings.FLAGAPP = {**settings.FLAGAPP, "ROLLOUT_PROMETHEUS": {"url": prom.url}}
    flag = make_flag("checkout.prom-flow")
    env = envs["production"]
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    plan = controller.create_plan(
        flag,
        env,
        treatment="on",
        control="off",
        metric_source="prometheus",
        guardrails=[{"metric": "error_rate", "threshold": 0.01, "min_sample": 1000}],
    )
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    controller.start(plan, actor=None, reason="go", now=start)
    sel = 'flag="checkout.prom-flow",environment="production"'
    prom.vector(
        "sum by (variant) " + grown(f'flagapp_events_total{{{sel},event="error"}}', "60s"),
        {"on": "130", "off": "10"},
    )
    prom.vector(
        "sum by (variant) " + grown(f"flagapp_exposures_total{{{sel}}}", "60s"),
        {"on": "4210", "off": "9000"},
    )
    outcome = controller.run_check(plan, now=start + timedelta(seconds=60))
    assert outcome.action == "rolled_back"
    assert outcome.message == "automatic rollback: error_rate 3.1% > 1.0% (n=4,210)"
    assert flag.states.get(environment=env).fallthrough == {"variant": "off"}


def test_controller__prometheus_down__no_judgement(
    settings: Any, make_flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp import services
    from flagapp.rollouts import controller

    fake = FakePrometheus()
    url = fake.url
    fake.server.server_close()
    settings.FLAGAPP = {**settings.FLAGAPP, "ROLLOUT_PROMETHEUS": {"url": url, "timeout": 1}}
    flag = make_flag("checkout.prom-down")
    env = envs["production"]
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    plan = controller.create_plan(
        flag,
        env,
        treatment="on",
        control="off",
        metric_source="prometheus",
        min_step_seconds=0,
        guardrails=[{"metric": "error_rate", "threshold": 0.01}],
    )
    controller.start(plan, actor=None, reason="go", now=UNTIL)
    outcome = controller.run_check(plan, now=UNTIL + timedelta(minutes=5))
    assert outcome.action == "error" and "unreachable" in outcome.message
    plan.refresh_from_db()
    assert plan.state == "running" and plan.current_bps == 100
