"""Cost of the rollout controller's arithmetic and of one guardrail check on stored events.

Two tables:

* the pure-Python statistics (per call, µs) — they run on every check and every results
  page, so they must be negligible next to the database work;
* one guardrail measurement (error_rate over the stored-events source: exposures counted in
  SQL, track events joined to exposures in Python) and one experiment analysis, per size of
  the window (ms), on SQLite in memory. This bounds how many events one beat interval can
  judge per plan.

Run: ``python -m benchmarks rollouts``.
"""

from __future__ import annotations

import datetime as dt
import io
import random

from benchmarks._django import configure_django
from benchmarks._table import per_call_us, print_table

SIZES = (10_000, 50_000)
ERROR_RATE = 0.02


def _stats_rows() -> list[list[object]]:
    from flagapp.rollouts import stats

    values = [random.Random(1).random() * 500 for _ in range(10_000)]
    cases = [
        ("two_proportion_ztest", lambda: stats.two_proportion_ztest(480, 5000, 560, 5100)),
        (
            "sample_ratio_mismatch (3 variants)",
            lambda: stats.sample_ratio_mismatch([1020, 1950, 7030], [1, 2, 7]),
        ),
        ("sample_size_per_variant", lambda: stats.sample_size_per_variant(0.1, 0.02)),
        ("percentile p95 of 10,000 values", lambda: stats.percentile(values, 95)),
    ]
    rows: list[list[object]] = []
    for name, fn in cases:
        calls = 200 if "percentile" in name else 20_000
        rows.append([name, per_call_us(fn, calls=calls, repeats=5)])
    return rows


def _events_rows() -> list[list[object]]:
    from django.core.management import call_command

    from flagapp.models import Environment, Experiment, Flag, SdkEvent
    from flagapp.rollouts.events_source import StoredEventsSource
    from flagapp.rollouts.experiments import analyse
    from flagapp.rollouts.guardrails import GuardrailSpec
    from flagapp.rollouts.metrics import MetricQuery

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    from django.contrib.auth.models import Group

    from flagapp import services

    owner = Group.objects.get_or_create(name="bench-rollouts")[0]
    rows: list[list[object]] = []
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rng = random.Random(3)
    for size in SIZES:
        env = Environment.objects.filter(key=f"bench-r-{size}").first() or (
            services.create_environment(
                key=f"bench-r-{size}", name="bench", actor=None, reason="benchmark"
            )
        )
        key = f"bench.rollout-{size}"
        flag = Flag.objects.filter(key=key).first() or services.create_flag(
            key=key,
            name=key,
            owner=owner,
            flag_type="experiment",
            actor=None,
            reason="benchmark",
        )
        SdkEvent.objects.filter(environment=env).delete()
        events = []
        for i in range(size):
            variant = "on" if i % 2 else "off"
            at = t0 + dt.timedelta(seconds=i % 3600)
            events.append(
                SdkEvent(
                    environment=env,
                    kind="exposure",
                    key=key,
                    flag_key=key,
                    variant=variant,
                    targeting_key=f"u{i}",
                    timestamp=at,
                )
            )
            if rng.random() < ERROR_RATE:
                events.append(
                    SdkEvent(
                        environment=env,
                        kind="tracking",
                        key="error",
                        targeting_key=f"u{i}",
                        timestamp=at + dt.timedelta(seconds=1),
                    )
                )
        SdkEvent.objects.bulk_create(events, batch_size=2000)
        query = MetricQuery(
            key,
            env.key,
            GuardrailSpec("error_rate", 0.01),
            t0,
            t0 + dt.timedelta(hours=2),
            ("on", "off"),
        )
        source = StoredEventsSource()
        ms = per_call_us(lambda q=query, s=source: s.measure(q), calls=3, repeats=3) / 1000
        rows.append([f"guardrail error_rate, {size:,} exposures", ms])
        exp = Experiment.objects.create(
            flag=flag,
            environment=env,
            name="bench",
            control_variant="off",
            conversion_event="error",
            started_at=t0,
            ended_at=t0 + dt.timedelta(hours=2),
            expected_weights={"on": 1, "off": 1},
        )
        ms = per_call_us(lambda e=exp: analyse(e), calls=3, repeats=3) / 1000
        rows.append([f"experiment analyse, {size:,} exposures", ms])
    return rows


def main() -> None:
    configure_django()
    print_table("rollouts: statistics (pure Python)", ["function", "µs/call"], _stats_rows())
    print_table(
        "rollouts: checks on stored events (SQLite in memory)", ["operation", "ms"], _events_rows()
    )


if __name__ == "__main__":
    main()
