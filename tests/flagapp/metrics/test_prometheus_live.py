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
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group

from tests.faults.support import Server, wait_until
from tests.flagapp.metrics.live_rollout import (
    SCRAPE_INTERVAL,
    TOKEN,
    Checks,
    Prometheus,
    guarded_plan,
    verified_decisions,
)

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

FLAG = "checkout.guarded-flow"


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
    plan = guarded_plan(flag, env)

    provider = FlagappProvider(
        flagapp_server.url,
        sdk_token,
        init_timeout=10,
        poll_interval=0.5,
        exposure_sample_rate=1.0,
        event_flush_interval=0.25,
    )
    domain = f"metrics-live-{uuid.uuid4().hex}"
    traffic = Traffic(api.get_client(domain))
    checks = Checks(plan)
    started = checks.started
    try:
        api.set_provider_and_wait(provider, domain)
        controller.start(plan, actor=None, reason="live Prometheus test")
        traffic.start()
        advanced_at = checks.until("advanced", 40)
        assert advanced_at is not None, f"never advanced: {checks.outcomes[-6:]}"
        traffic.bad.set()
        breach_started = time.monotonic()
        rolled_back_at = checks.until("rolled_back", 30)
        assert rolled_back_at is not None, f"never rolled back: {checks.outcomes[-6:]}"
    finally:
        traffic.stop.set()
        traffic.join(5)
        api.shutdown()  # flushes the provider's buffered events
        api.clear_providers()
    assert not traffic.errors, traffic.errors[:3]

    advance, rollback = verified_decisions(plan, flag, env)
    assert all(r["n"] >= 60 for r in advance.details["results"]), advance.details

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
