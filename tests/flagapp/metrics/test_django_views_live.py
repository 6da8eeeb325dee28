"""An experiment and a guarded rollout driven end to end by a Django app's own views (issue 14).

Real components, as tests/flagapp/metrics/test_prometheus_live.py (the fixtures and the
rollout helpers both use are this folder's conftest.py and live_rollout.py): uvicorn with
two workers (prometheus-client's multiprocess mode) serving this test's PostgreSQL database
and a urlconf of shop views (``shop_app``); Debian's Prometheus scraping ``/metrics`` every
second. The views record everything through flagapp's Django
API only: ``flag_is_active`` (the guarded flag), ``{% flag %}`` (the experiment's flag),
``get_value`` (a flag nothing reads), ``flagapp.track`` (latency, errors, purchases). The
exposures are recorded by default because the snapshot marks the flags an experiment or a
guarded rollout reads (``RECORD_EXPOSURES = "observed"``), stored after the responses, and
counted in ``flagapp_exposures_total`` when stored.

- The rollout's guardrails read Prometheus (``PrometheusSource``): healthy views make it
  advance, then the treatment's views degrade and it rolls back on its own.
- The experiment shows exactly the users and conversions the views saw.
- Prometheus' exposure total equals the rows stored.
- The stale report lists neither the Django-only flag nor a flag only a non-Django service
  evaluates through the Python provider (its usage counts, sent by default), and lists the
  flag nobody evaluates.

Needs PostgreSQL and the ``prometheus`` binary (skipped with the reason otherwise). Figures
are printed (``-s``): docs/observability.md quotes them.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from tests.faults.support import Server, wait_until
from tests.flagapp.metrics.live_rollout import Checks, Prometheus, guarded_plan, verified_decisions
from tests.flagapp.metrics.shop_app import BANNER, EXPERIMENT, GUARDED

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

SERVICE_FLAG = "svc.batch-size"  # evaluated only by a non-Django service (the provider)
UNUSED = "svc.unused"  # evaluated by nobody


@pytest.fixture
def server_settings_lines() -> str:
    return (
        "ROOT_URLCONF = 'tests.flagapp.metrics.shop_app'\n"
        "FLAGAPP = {**FLAGAPP, 'CONTEXT_BUILDER': 'tests.flagapp.exposure_views.user_context',"
        " 'SAMPLING_FLUSH_SECONDS': 0.2}\n"
    )


class Checkout(threading.Thread):
    """Users hitting the checkout view; ``degraded`` breaks the treatment's code path."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seed = seed
        self.degraded = threading.Event()
        self.stop = threading.Event()
        self.served = 0
        #: When each served view completed (wall clock, comparable with the DB's timestamps).
        self.times: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        rng = random.Random(self.seed)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                params = {"user": f"user-{rng.randrange(5000)}", "n": str(self.served)}
                if self.degraded.is_set():
                    params["degraded"] = "1"
                try:
                    response = client.get("/checkout/", params=params)
                    assert response.status_code == 200, response.status_code
                    self.served += 1
                    self.times.append(time.time())
                except Exception as exc:  # reported by the test
                    self.errors.append(repr(exc))


def _flush_everywhere(url: str, times: int = 12) -> None:
    """Ask the server to store what its processes buffer (requests land on both workers)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(times):
            assert client.get("/flush/").status_code == 200


def test_django_views__experiment_and_guarded_rollout__real_prometheus_end_to_end(
    prometheus: Prometheus,
    flagapp_server: Server,
    settings: Any,
) -> None:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from flagapp import services
    from flagapp.governance.stale import stale_report
    from flagapp.models import Experiment, Flag, SdkEvent
    from flagapp.rollouts import controller
    from flagapp.rollouts.experiments import analyse
    from flagapp.services import sdk_keys
    from openfeature_provider import FlagappProvider

    url = flagapp_server.url
    settings.FLAGAPP = {**settings.FLAGAPP, "ROLLOUT_PROMETHEUS": {"url": prometheus.url}}
    env = services.create_environment(key="production", name="P", actor=None, reason="test")
    owner = Group.objects.create(name="shop")

    def flag(key: str, flag_type: str = "ops", **state: Any) -> Any:
        made = services.create_flag(
            key=key, name=key, owner=owner, flag_type=flag_type, actor=None, reason="test"
        )
        services.update_flag_state(made, env, enabled=True, actor=None, reason="on", **state)
        return made

    guarded = flag(GUARDED)
    half = {"rollout": {"weights": [{"variant": "on", "weight": 5000},
                                    {"variant": "off", "weight": 5000}]}}  # fmt: skip
    exp_flag = flag(EXPERIMENT, "experiment", fallthrough=half)
    flag(BANNER, fallthrough={"variant": "on"})
    flag(SERVICE_FLAG)
    flag(UNUSED)
    experiment = services.create_experiment(
        actor=None,
        flag=exp_flag,
        environment=env,
        name="green button",
        control_variant="off",
        conversion_event="purchase",
        started_at=timezone.now(),
    )
    plan = guarded_plan(guarded, env)
    controller.start(plan, actor=None, reason="views test")
    time.sleep(1.5)  # the workers load the snapshot marking both flags (CACHE_CHECK_INTERVAL)

    # A non-Django service evaluates SERVICE_FLAG through the provider: usage counts only
    # (sent by default; no exposures, no contexts).
    _, sdk_token = sdk_keys.create_sdk_key(env, name="service", actor=None, reason="tests")
    provider = FlagappProvider(url, sdk_token, init_timeout=10, usage_interval=0.5)
    domain = f"views-live-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain)
    service = api.get_client(domain)
    for i in range(25):
        service.get_boolean_value(SERVICE_FLAG, False, EvaluationContext(targeting_key=f"s{i}"))
    api.shutdown()  # sends the counts
    api.clear_providers()

    drivers = [Checkout(url, seed) for seed in (1, 2)]
    checks = Checks(plan)
    started = checks.started
    for d in drivers:
        d.start()

    # The experiment's shop: 300 users once each; green converts one in three, grey one in
    # five; someone who never saw the shop buys too (counted nowhere).
    variant_of: dict[str, str] = {}
    buyers: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(300):
                user = f"shopper-{i}"
                body = client.get("/shop/", params={"user": user}).text
                assert body.split() in (["green", "banner"], ["grey", "banner"]), body
                variant_of[user] = "on" if body.startswith("green") else "off"
            for i, user in enumerate(variant_of):
                if i % (3 if variant_of[user] == "on" else 5) == 0:
                    assert client.get("/buy/", params={"user": user}).status_code == 200
                    buyers.append(user)
            client.get("/buy/", params={"user": "stranger"})
        advanced_at = checks.until("advanced", 60)
        assert advanced_at is not None, f"never advanced: {checks.outcomes[-6:]}"
        for d in drivers:
            d.degraded.set()
        degraded_at = time.monotonic()
        rolled_back_at = checks.until("rolled_back", 45)
        assert rolled_back_at is not None, f"never rolled back: {checks.outcomes[-6:]}"
    finally:
        for d in drivers:
            d.stop.set()
            d.join(10)
    assert not [e for d in drivers for e in d.errors], [d.errors[:3] for d in drivers]

    advance, rollback = verified_decisions(plan, guarded, env)

    # Every process's buffer stored (a worker stores its buffer after its own responses: an
    # idle one is asked through /flush/); then Prometheus' total equals the rows stored.
    served = sum(d.served for d in drivers)
    # Views that completed before the rollback was decided are all recorded. Once it has
    # rolled back, nothing reads the guarded flag, so with the default RECORD_EXPOSURES
    # ("observed") a view served after the rollback's snapshot reached its worker is counted,
    # not stored (a fresh-clone CI run: 1,352 rows for 1,354 views).
    cutoff = rollback.at.timestamp()
    before_rollback = sum(1 for d in drivers for t in d.times if t < cutoff)
    total = f'sum(flagapp_exposures_total{{flag="{GUARDED}",environment="production"}})'
    guarded_rows = SdkEvent.objects.filter(kind="exposure", flag_key=GUARDED)
    shop_rows = SdkEvent.objects.filter(kind="exposure", flag_key=EXPERIMENT)
    purchases = SdkEvent.objects.filter(kind="tracking", key="purchase")

    def all_stored() -> bool:
        _flush_everywhere(url, 4)
        return (
            before_rollback <= guarded_rows.count() <= served
            and shop_rows.count() == len(variant_of)
            and purchases.count() == len(buyers) + 1  # the stranger's too
        )

    assert wait_until(all_stored, 30, 0.5) is not None, (
        (guarded_rows.count(), before_rollback, served),
        (shop_rows.count(), len(variant_of)),
        (purchases.count(), len(buyers) + 1),
    )
    _flush_everywhere(url, 4)
    stored = guarded_rows.count()
    assert before_rollback <= stored <= served, (before_rollback, stored, served)
    # Exactly once: what Prometheus scraped equals what the database stored.
    assert wait_until(lambda: prometheus.scalar(total) == stored, 10, 0.25) is not None, (
        prometheus.scalar(total),
        stored,
    )
    assert SdkEvent.objects.filter(flag_key=BANNER).count() == 0  # nothing reads it: counted

    # The experiment: exactly the users and conversions the views saw.
    users = {v: sum(1 for x in variant_of.values() if x == v) for v in ("on", "off")}
    converted = {v: sum(1 for u in buyers if variant_of[u] == v) for v in ("on", "off")}
    assert min(users.values()) > 100
    experiment = Experiment.objects.get(pk=experiment.pk)
    results = {r.variant: r for r in analyse(experiment).variants}
    assert {v: (results[v].users, results[v].conversions) for v in ("on", "off")} == {
        v: (users[v], converted[v]) for v in ("on", "off")
    }

    # The stale report, as if 60 days had passed since the flags were created and 30 since
    # the last evaluation counted: neither the Django-only flag nor the provider-only flag
    # is listed; the flag nobody evaluated is.
    Flag.objects.update(created_at=timezone.now() - dt.timedelta(days=60))
    report = stale_report(now=timezone.now() + dt.timedelta(days=29), days=30)
    assert set(report.not_evaluated) == {UNUSED}, report.as_dict()
    later = stale_report(now=timezone.now() + dt.timedelta(days=31), days=30)
    assert {BANNER, SERVICE_FLAG} <= set(later.not_evaluated)  # the report can see them go

    print(
        f"\n[views-live] {served} checkout views = {stored} exposures stored = scraped;"
        f" advanced after {advanced_at - started:.1f} s; rollback decided"
        f" {rolled_back_at - degraded_at:.1f} s after the treatment's views degraded"
        f" (scrape every 1s, checks every 0.5 s)\n[views-live] advance: {advance.reason}\n"
        f"[views-live] {rollback.reason}\n[views-live] experiment: users {users},"
        f" conversions {converted}; {len(variant_of)} shop exposures"
    )
