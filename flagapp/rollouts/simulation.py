"""Drive real rollouts with synthetic traffic, end to end, in seconds.

What is real: the Django app served over HTTP on 127.0.0.1 (its WSGI application in a
server thread, or any ``--url``), SDK keys, ``FlagappProvider`` fetching the ruleset and
POSTing exposures and ``client.track("error")`` events to ``/sdk/v1/events``, the stored
events, the controller, the services and the snapshots. What is simulated: the users (a
seeded random generator) and the passing of time.

Time: waiting ten real minutes per step would make the demonstration useless, so the
controller runs on a :class:`SimClock` that jumps forward between ticks. Events are stamped
by the provider with the real wall clock; :class:`ClockMappedSource` translates each
guardrail window from simulated to real time before asking the stored-events source, so the
controller sees exactly the events produced during that simulated interval.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.utils import timezone

from .guardrails import VariantSample
from .metrics import MetricQuery, MetricSource
from .schedule import format_bps

__all__ = [
    "ClockMappedSource",
    "Scenario",
    "ScenarioResult",
    "SimClock",
    "TickRow",
    "format_timeline",
    "run_scenario",
    "serve_in_thread",
]


class SimClock:
    """Real time plus an offset that only grows (``advance``). ``to_real`` inverts it: a
    simulated instant inside a jump maps to the real instant the jump happened."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._jump_real: list[datetime] = []  # real instants of the jumps, increasing
        self._offsets: list[timedelta] = [timedelta(0)]  # offset of segment k

    def now(self) -> datetime:
        return timezone.now() + self.offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._jump_real.append(timezone.now())
        self.offset += delta
        self._offsets.append(self.offset)

    def to_real(self, sim: datetime) -> datetime:
        # Segment k covers real [jump_{k-1}, jump_k) with offset _offsets[k].
        for k, offset in enumerate(self._offsets):
            real = sim - offset
            seg_start = self._jump_real[k - 1] if k > 0 else None
            seg_end = self._jump_real[k] if k < len(self._jump_real) else None
            if seg_start is not None and real < seg_start:
                return seg_start  # inside the jump that started this segment
            if seg_end is None or real < seg_end:
                return real
        return sim - self.offset  # unreachable: the last segment is open-ended


class ClockMappedSource:
    """A metric source whose windows are in simulated time (see module doc)."""

    def __init__(self, inner: MetricSource, clock: SimClock) -> None:
        self.inner = inner
        self.clock = clock
        self.name = f"{inner.name} (simulated clock)"

    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        real = dataclasses.replace(
            query, since=self.clock.to_real(query.since), until=self.clock.to_real(query.until)
        )
        return self.inner.measure(real)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_in_thread(app: Callable[..., Any] | None = None) -> Iterator[str]:
    """Serve the Django WSGI application on 127.0.0.1 (a free port) in a daemon thread."""
    from django.core.wsgi import get_wsgi_application

    server = make_server(
        "127.0.0.1",
        0,
        app or get_wsgi_application(),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="flagapp-sim-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Scenario:
    name: str
    users_per_tick: int = 2000
    tick: timedelta = timedelta(minutes=5)
    min_step: timedelta = timedelta(minutes=10)
    steps: tuple[int, ...] = (500, 2500, 5000, 10000)
    threshold: float = 0.01
    min_sample: int = 150
    base_error_rate: float = 0.002
    #: (error rate of the treatment, from which step index on) — None: healthy.
    spike: tuple[float, int] | None = None
    max_ticks: int = 40
    seed: int = 7


@dataclass
class TickRow:
    at: timedelta
    bps: int
    users: int
    treatment_n: int | None
    treatment_rate: float | None
    control_rate: float | None
    action: str
    message: str


@dataclass
class ScenarioResult:
    scenario: Scenario
    flag_key: str
    plan_id: int
    final_state: str
    rows: list[TickRow] = field(default_factory=list)


def _wait_ready(client: Any, timeout: float = 10.0) -> None:
    from openfeature.provider import ProviderStatus

    deadline = time.monotonic() + timeout
    while client.get_provider_status() != ProviderStatus.READY:
        if time.monotonic() > deadline:
            raise RuntimeError(f"provider not ready: {client.get_provider_status()}")
        time.sleep(0.02)


def _traffic(
    url: str,
    token: str,
    flag_key: str,
    scenario: Scenario,
    step_index: int,
    rng: random.Random,
    tick_no: int,
) -> int:
    """One tick of users through a fresh provider session; shutdown flushes the events."""
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from openfeature_provider import FlagappProvider

    domain = f"flagapp-simulation-{flag_key}"
    provider = FlagappProvider(
        url=url,
        sdk_key=token,
        poll_interval=3600.0,
        exposure_sample_rate=1.0,
        event_batch_size=500,
        event_flush_interval=0.2,
        event_capacity=max(10_000, scenario.users_per_tick * 3),
    )
    api.set_provider(provider, domain=domain)
    client = api.get_client(domain=domain)
    try:
        _wait_ready(client)
        for i in range(scenario.users_per_tick):
            # Returning users: the same ids every tick, so "users already in keep their
            # variant" shows in the data; plus a few new ones.
            user = f"user-{rng.randrange(scenario.users_per_tick * 4)}"
            ctx = EvaluationContext(targeting_key=user, attributes={"tick": tick_no, "i": i})
            details = client.get_boolean_details(flag_key, False, ctx)
            error_rate = scenario.base_error_rate
            if (
                scenario.spike is not None
                and details.variant == "on"
                and step_index >= scenario.spike[1]
            ):
                error_rate = scenario.spike[0]
            if rng.random() < error_rate:
                client.track("error", ctx)
    finally:
        provider.shutdown()
    return scenario.users_per_tick


def run_scenario(
    scenario: Scenario,
    *,
    url: str,
    token: str,
    environment: Any,
    owner: Any,
    clock: SimClock | None = None,
    on_row: Callable[[TickRow], None] | None = None,
) -> ScenarioResult:
    """Create a flag, run one rollout plan on it until it completes or rolls back."""
    from flagapp import services
    from flagapp.models import RolloutPlan

    from . import controller
    from .events_source import StoredEventsSource

    clock = clock or SimClock()
    rng = random.Random(scenario.seed)
    suffix = timezone.now().strftime("%Y%m%d%H%M%S%f")
    flag_key = f"sim.{scenario.name}-{suffix}"
    flag = services.create_flag(
        key=flag_key,
        name=f"simulation: {scenario.name}",
        owner=owner,
        flag_type="ops",
        actor=None,
        reason="rollout simulation",
    )
    services.update_flag_state(
        flag, environment, enabled=True, actor=None, reason="simulation: serve off"
    )
    plan = controller.create_plan(
        flag,
        environment,
        treatment="on",
        control="off",
        steps=list(scenario.steps),
        min_step_seconds=int(scenario.min_step.total_seconds()),
        # A salt independent of the (timestamped) flag key: the same seed buckets the same
        # users the same way on every run.
        salt=f"simulation-{scenario.name}-{scenario.seed}",
        guardrails=[
            {
                "metric": "error_rate",
                "threshold": scenario.threshold,
                "min_sample": scenario.min_sample,
            }
        ],
    )
    start = clock.now()
    controller.start(plan, actor=None, reason="simulation", now=start)
    source = ClockMappedSource(StoredEventsSource(), clock)
    result = ScenarioResult(scenario, flag_key, plan.pk, "running")
    for tick_no in range(scenario.max_ticks):
        plan = RolloutPlan.objects.get(pk=plan.pk)
        users = _traffic(url, token, flag_key, scenario, plan.step_index, rng, tick_no)
        clock.advance(scenario.tick)
        outcome = controller.run_check(plan, now=clock.now(), source=source)
        guard = outcome.results[0] if outcome.results else {}
        row = TickRow(
            at=clock.now() - start,
            bps=plan.current_bps,
            users=users,
            treatment_n=guard.get("n"),
            treatment_rate=guard.get("value"),
            control_rate=guard.get("control_value"),
            action=outcome.action,
            message=outcome.message,
        )
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
        if outcome.action in ("completed", "rolled_back"):
            break
    result.final_state = RolloutPlan.objects.get(pk=plan.pk).state
    return result


def format_timeline(result: ScenarioResult) -> str:
    """The timeline as a plain-text table (what the command prints)."""
    headers = ["time", "served", "users", "n(on)", "err(on)", "err(off)", "action", "detail"]
    rows = [headers]
    for r in result.rows:
        minutes = int(r.at.total_seconds() // 60)
        rows.append(
            [
                f"T+{minutes:>3}m",
                format_bps(r.bps),
                f"{r.users:,}",
                "-" if r.treatment_n is None else f"{r.treatment_n:,}",
                "-" if r.treatment_rate is None else f"{r.treatment_rate * 100:.2f}%",
                "-" if r.control_rate is None else f"{r.control_rate * 100:.2f}%",
                r.action,
                r.message,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
    lines = []
    for j, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
        if j == 0:
            lines.append("  ".join("-" * w for w in [*widths, 6]))
    return "\n".join(lines)


def plan_timeline_rows(plan_id: int) -> list[tuple[datetime, int, str]]:
    """(at, bps, reason) of a plan's transitions, for callers that print history."""
    from flagapp.models import RolloutTransition

    return [
        (t.at, t.to_bps, f"{t.action}: {t.reason}")
        for t in RolloutTransition.objects.filter(plan_id=plan_id).order_by("at", "id")
    ]
