"""A guardrailed rollout driven by a real Prometheus scraping a live flagapp (issue 14).

Real components end to end: uvicorn with two workers (prometheus-client's multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``) serving this test's PostgreSQL database; Debian's
``prometheus`` binary started on loopback with a generated configuration that scrapes the
server's ``/metrics`` every second with a bearer token; the Python OpenFeature provider
evaluating the flag against the server and sending every exposure and ``track()`` event to
``POST /sdk/v1/events``; the rollout controller (``run_check``) reading guardrails through
``PrometheusSource`` with its default queries. Healthy traffic makes the rollout advance on
scraped data; then the treatment's error rate and latency degrade and the controller rolls
back on its own. Finally Prometheus' total of exposures must equal the rows stored (the
events pipeline counted exactly once across both workers).

Needs PostgreSQL (the server is another process and reads the committed rows) and the
``prometheus`` binary: skipped with the reason otherwise (a failure under
``FLAGAPP_REQUIRE_SERVICES=1``: .ci/run installs the package). Bounded: about 30-45 s.
Figures are printed (``-s``): docs/observability.md quotes them.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.db import connection

from tests.faults.support import Server, free_port, wait_until

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

FLAG = "checkout.guarded-flow"
TOKEN = "scrape-" + uuid.uuid4().hex
SCRAPE_INTERVAL = "1s"


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "Debian's prometheus binary is not installed (apt-get install prometheus; "
            ".ci/run installs it)"
        )
    if connection.vendor != "postgresql":
        pytest.skip("the live server process needs FLAGAPP_TEST_DB=postgres")
    return binary


@pytest.fixture
def server_settings_lines() -> str:
    """Settings appended to the server's module (a test module overrides this fixture)."""
    return ""


@pytest.fixture
def flagapp_server(
    prometheus_binary: str, tmp_path: Path, server_settings_lines: str
) -> Iterator[Server]:
    """uvicorn, two workers, on this test's database, metrics in a multiprocess dir."""
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    module = f"flagapp_metrics_live_{uuid.uuid4().hex[:8]}"
    (settings_dir / f"{module}.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "DATABASES['default']['CONN_MAX_AGE'] = 0\n"
        "FLAGAPP = {**FLAGAPP, 'METRICS_ALLOW': [], "
        f"'METRICS_TOKEN': {TOKEN!r}, 'CACHE_CHECK_INTERVAL': 0.5}}\n" + server_settings_lines
    )
    env = {
        "DJANGO_SETTINGS_MODULE": module,
        "FLAGAPP_TEST_DB": "postgres",
        "FLAGAPP_TEST_PG_NAME": str(connection.settings_dict["NAME"]),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    server = Server("flagapp.asgi:application", env, workers=2, cwd=settings_dir)
    try:
        server.wait_ready(timeout=90)
        yield server
    finally:
        server.stop()


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=5)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(prometheus_binary: str, flagapp_server: Server, tmp_path: Path) -> Iterator[Any]:
    """Debian's Prometheus on loopback, scraping ``flagapp_server`` every second."""
    port = free_port()
    target = flagapp_server.url.removeprefix("http://")
    (tmp_path / "token").write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: flagapp\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        f"      credentials_file: {tmp_path / 'token'}\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    log = Path(tempfile.mkstemp(prefix="flagapp-prometheus-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        ready = wait_until(
            lambda: httpx.get(f"{prom.url}/-/ready", timeout=1).status_code == 200, 30, 0.1
        )
        assert ready is not None, f"prometheus not ready:\n{log.read_text()[-3000:]}"
        up = wait_until(lambda: prom.scalar('up{job="flagapp"}') == 1.0, 30, 0.2)
        assert up is not None, f"target never up: {prom.query('up')}\n{log.read_text()[-3000:]}"
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Traffic(threading.Thread):
    """Users evaluated through the OpenFeature client, each followed by ``track()`` calls:
    ``latency_ms`` with a value and, sometimes, ``error``. ``bad`` degrades the treatment."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.bad = threading.Event()
        self.stop = threading.Event()
        self.evaluations = 0
        self.errors: list[str] = []

    def run(self) -> None:
        from openfeature.evaluation_context import EvaluationContext
        from openfeature.track import TrackingEventDetails

        rng = random.Random(14)
        while not self.stop.is_set():
            try:
                ctx = EvaluationContext(targeting_key=f"user-{rng.randrange(5000)}")
                details = self.client.get_boolean_details(FLAG, False, ctx)
                degraded = self.bad.is_set() and details.variant == "on"
                latency = rng.uniform(400, 900) if degraded else rng.uniform(20, 90)
                self.client.track("latency_ms", ctx, TrackingEventDetails(value=latency))
                if rng.random() < (0.3 if degraded else 0.01):
                    self.client.track("error", ctx)
                self.evaluations += 1
            except Exception as exc:  # reported by the test
                self.errors.append(repr(exc))
            time.sleep(0.008)


def test_rollout__real_prometheus_scraping_live_server__advances_then_rolls_back(
    prometheus: Prometheus, flagapp_server: Server, settings: Any, tmp_path: Path
) -> None:
    from openfeature import api

    from flagapp import services
    from flagapp.models import SdkEvent
    from flagapp.rollouts import controller
    from flagapp.services import sdk_keys
    from openfeature_provider import FlagappProvider

    settings.FLAGAPP = {**settings.FLAGAPP, "ROLLOUT_PROMETHEUS": {"url": prometheus.url}}
    env = services.create_environment(key="production", name="P", actor=None, reason="test")
    owner = Group.objects.create(name="checkout")
    flag = services.create_flag(
        key=FLAG, name="Guarded", owner=owner, flag_type="ops", actor=None, reason="test"
    )
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    _, sdk_token = sdk_keys.create_sdk_key(env, name="live", actor=None, reason="tests")
    plan = controller.create_plan(
        flag,
        env,
        treatment="on",
        control="off",
        steps=[2000, 5000, 10000],
        min_step_seconds=3,
        metric_source="prometheus",
        notify_owners=False,
        guardrails=[
            {"metric": "error_rate", "threshold": 0.05, "min_sample": 60},
            {
                "metric": "latency",
                "event_key": "latency_ms",
                "percentile": 95,
                "threshold": 250,
                "min_sample": 60,
            },
        ],
    )

    provider = FlagappProvider(
        flagapp_server.url,
        sdk_token,
        init_timeout=10,
        poll_interval=0.5,
        exposure_sample_rate=1.0,
        event_flush_interval=0.25,
    )
    domain = f"metrics-live-{uuid.uuid4().hex}"
    outcomes: list[tuple[float, str, str]] = []
    traffic = Traffic(api.get_client(domain))
    started = time.monotonic()
    try:
        api.set_provider_and_wait(provider, domain)
        controller.start(plan, actor=None, reason="live Prometheus test")
        traffic.start()

        def check_until(action: str, within: float) -> float | None:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                outcome = controller.run_check(plan)
                outcomes.append((time.monotonic() - started, outcome.action, outcome.message))
                if outcome.action == action:
                    return time.monotonic()
                time.sleep(0.5)
            return None

        advanced_at = check_until("advanced", 40)
        assert advanced_at is not None, f"never advanced: {outcomes[-6:]}"
        traffic.bad.set()
        breach_started = time.monotonic()
        rolled_back_at = check_until("rolled_back", 30)
        assert rolled_back_at is not None, f"never rolled back: {outcomes[-6:]}"
    finally:
        traffic.stop.set()
        traffic.join(5)
        api.shutdown()  # flushes the provider's buffered events
        api.clear_providers()
    assert not traffic.errors, traffic.errors[:3]

    plan.refresh_from_db()
    assert plan.state == "rolled_back"
    # The evidence of each decision is what Prometheus answered for the two guardrails.
    advance = plan.transitions.get(action="advance")
    assert [(r["label"], r["status"]) for r in advance.details["results"]] == [
        ("error_rate", "ok"),
        ("latency_ms_p95", "ok"),
    ], advance.details
    assert all(r["n"] >= 60 for r in advance.details["results"]), advance.details
    rollback = plan.transitions.get(action="rollback")
    assert rollback.automatic and rollback.reason.startswith("automatic rollback:"), rollback
    breached = {r["label"] for r in rollback.details["results"] if r["status"] == "breach"}
    assert breached, rollback.details
    assert flag.states.get(environment=env).fallthrough == {"variant": "off"}

    # Exactly once: what Prometheus scraped equals what the database stored, summed over
    # both workers' files.
    stored = SdkEvent.objects.filter(kind="exposure", flag_key=FLAG).count()
    total = f'sum(flagapp_exposures_total{{flag="{FLAG}",environment="production"}})'
    converged = wait_until(lambda: prometheus.scalar(total) == stored, 10, 0.25)
    assert converged is not None, (prometheus.scalar(total), stored)

    scrape = httpx.get(
        f"{flagapp_server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert scrape.status_code == 200
    writers = {  # worker processes whose counters the scrape summed
        name.rsplit("_", 1)[1] for name in os.listdir(tmp_path / "prometheus-multiproc")
    }
    samples = prometheus.scalar('scrape_samples_scraped{job="flagapp"}')
    print(
        f"\n[prometheus-live] {traffic.evaluations} evaluations, {stored} exposures stored ="
        f" scraped; advanced after {advanced_at - started:.1f} s; rollback decided"
        f" {rolled_back_at - breach_started:.1f} s after the treatment degraded"
        f" (scrape every {SCRAPE_INTERVAL}, checks every 0.5 s); /metrics"
        f" {len(scrape.content)} bytes, {samples:.0f} samples, built in"
        f" {float(scrape.headers['X-Flagapp-Scrape-Seconds']) * 1000:.1f} ms; metric files of"
        f" {len(writers)} processes\n[prometheus-live] advance: {advance.reason}\n"
        f"[prometheus-live] {rollback.reason}"
    )
