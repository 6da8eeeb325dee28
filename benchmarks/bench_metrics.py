"""Cost of the Prometheus metrics (flagapp.metrics) on the events pipeline and of a scrape.

Two tables, SQLite in memory, one process (no multiprocess directory):

* storing one ``POST /sdk/v1/events`` batch (``flagapp.sdk.events.store``: 250 exposures
  to 10 flags and 250 track events of the same users, half with a value) over a table that
  already holds exposures, with ``METRICS_ENABLED`` off and on: the difference is the
  attribution query and the counter updates;
* building the ``/metrics`` body (``flagapp.metrics.scrape``) once that many flags have
  counted: milliseconds and bytes.

Run: ``python -m benchmarks metrics``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import statistics
import time
from typing import Any

from benchmarks._django import configure_django
from benchmarks._table import print_table

PRIOR_EXPOSURES = (10_000, 100_000)
FLAGS = 10
REPEATS = 15


def _batch(rng: random.Random, now: dt.datetime) -> bytes:
    users = [f"user-{rng.randrange(50_000)}" for _ in range(250)]
    events: list[dict[str, Any]] = []
    for user in users:
        events.append(
            {
                "kind": "exposure",
                "flag": f"bench.metrics-{rng.randrange(FLAGS)}",
                "variant": rng.choice(("on", "off")),
                "context": {"targetingKey": user},
                "timestamp": now.isoformat(),
            }
        )
    for i, user in enumerate(users):
        event: dict[str, Any] = {
            "kind": "tracking",
            "name": "latency_ms" if i % 2 else "error",
            "targetingKey": user,
            "timestamp": (now + dt.timedelta(seconds=1)).isoformat(),
        }
        if i % 2:
            event["value"] = rng.uniform(10, 500)
        events.append(event)
    return json.dumps({"events": events}).encode()


def _store_ms(enabled: bool, rng: random.Random) -> float:
    from django.test import override_settings

    from flagapp.sdk import events

    times = []
    with override_settings(FLAGAPP={"SINGLE_PROCESS": True, "METRICS_ENABLED": enabled}):
        for _ in range(REPEATS):
            batch = events.parse_batch(_batch(rng, dt.datetime.now(dt.UTC)), max_events=1000)
            start = time.perf_counter()
            events.store("bench-metrics", batch)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    configure_django()
    from django.core.management import call_command

    from flagapp import metrics, services
    from flagapp.models import Environment, SdkEvent

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    env = Environment.objects.filter(key="bench-metrics").first() or (
        services.create_environment(key="bench-metrics", name="b", actor=None, reason="bench")
    )
    rng = random.Random(14)
    rows: list[list[object]] = []
    have = 0
    for prior in PRIOR_EXPOSURES:
        t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        SdkEvent.objects.bulk_create(
            [
                SdkEvent(
                    environment=env,
                    kind=SdkEvent.KIND_EXPOSURE,
                    key=f"bench.metrics-{i % FLAGS}",
                    flag_key=f"bench.metrics-{i % FLAGS}",
                    variant="on" if i % 2 else "off",
                    targeting_key=f"user-{rng.randrange(50_000)}",
                    timestamp=t0 + dt.timedelta(milliseconds=i),
                )
                for i in range(prior - have)
            ],
            batch_size=2000,
        )
        have = prior
        off = _store_ms(False, rng)
        on = _store_ms(True, rng)
        rows.append([f"{prior:,}", f"{off:.1f}", f"{on:.1f}", f"{on - off:+.1f}"])
    print_table(
        "store one events batch (250 exposures + 250 track events), median ms",
        ["exposures already stored", "metrics off", "metrics on", "difference"],
        rows,
    )
    start = time.perf_counter()
    body, _ = metrics.scrape()
    scrape_ms = (time.perf_counter() - start) * 1000
    lines = len(body.splitlines())
    print_table(
        f"GET /metrics body after {FLAGS} flags x 2 variants x 2 events counted",
        ["build ms", "bytes", "lines"],
        [[f"{scrape_ms:.1f}", f"{len(body):,}", f"{lines:,}"]],
    )


if __name__ == "__main__":
    main()
