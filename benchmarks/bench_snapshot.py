"""The write path: compiling and publishing a snapshot, by number of flags.

Every flag has two rules (an attribute rule and a segment rule with a rollout) and a
fallthrough, in one environment; flags are created through ``flagapp.services``. Timed:

* compile: ``snapshot.compile_environment`` (ORM -> format-v1 document), with its query
  count (bounded: it must not grow with the number of flags);
* compile + parse: what ``publish`` validates before storing;
* change + publish: one ``services.set_flag_enabled`` (lock, version check, validation by
  the engine, history) followed by ``snapshot.publish`` — the full cost of a kill switch.

Django is configured in-process like bench_django (SQLite in memory, local-memory cache).
Run: ``python -m benchmarks snapshot``.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks._table import print_table

SIZES = (10, 100, 1000)
REPEATS = 5


def _ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _change_and_publish(
    services: Any, snapshot: Any, flag: Any, env: Any, reason: str
) -> Callable[[], None]:
    """A kill-switch flip (alternating off/on) followed by a publish."""
    enabled = [True]

    def run() -> None:
        enabled[0] = not enabled[0]
        services.set_flag_enabled(flag, env, enabled[0], actor=None, reason=reason)
        snapshot.publish(env)

    return run


def main() -> None:
    from benchmarks._django import configure_django

    configure_django()
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from flagapp import services, snapshot
    from flagapp.models import Environment, Flag, Segment

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    reason = "benchmark"
    owner, _ = Group.objects.get_or_create(name="bench-snapshot")
    env = Environment.objects.filter(key="bench-snapshot").first() or (
        services.create_environment(key="bench-snapshot", name="Bench", actor=None, reason=reason)
    )
    if not Segment.objects.filter(key="bench-beta").exists():
        services.create_segment(
            key="bench-beta",
            name="Beta",
            include=["u1", "u2"],
            conditions=[{"attr": "email", "op": "ends_with", "values": ["@corp.example"]}],
            actor=None,
            reason=reason,
        )
    rules: list[dict[str, Any]] = [
        {
            "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
            "serve": {"variant": "on"},
        },
        {
            "when": [{"op": "in_segment", "values": ["bench-beta"]}],
            "serve": {
                "rollout": {
                    "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]
                }
            },
        },
    ]
    rows = []
    created = 0
    for size in SIZES:
        with transaction.atomic():
            while created < size:
                flag = services.create_flag(
                    key=f"bench.snapshot.flag-{created}",
                    name="bench",
                    owner=owner,
                    flag_type="ops",
                    actor=None,
                    reason=reason,
                )
                services.update_flag_state(
                    flag, env, actor=None, reason=reason, enabled=True, rules=rules
                )
                created += 1
        n_flags = Flag.objects.filter(archived=False).count()
        with CaptureQueriesContext(connection) as queries:
            document = snapshot.compile_environment(env)
        compile_ms = _ms(lambda: snapshot.compile_environment(env))
        parse_ms = _ms(lambda: snapshot.parse(snapshot.compile_environment(env)))
        target = Flag.objects.get(key="bench.snapshot.flag-0")
        publish_ms = _ms(_change_and_publish(services, snapshot, target, env, reason))
        size_kb = len(snapshot.canonical_json(document).encode()) / 1024
        rows.append((n_flags, len(queries), compile_ms, parse_ms, publish_ms, size_kb))
    print_table(
        "Snapshot compile / publish (SQLite in memory; ms, median of 5)",
        ["flags", "queries", "compile ms", "compile+parse ms", "change+publish ms", "document KiB"],
        rows,
    )


if __name__ == "__main__":
    main()
