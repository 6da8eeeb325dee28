"""Scale, delivery side (issue 17 items 3, 5, 6): deltas, SSE fan-out, a polling fleet.

Three tables, every figure with the 1-minute load average read when it was taken (the machine
has 2 cores shared with other work):

1. **Delta size and apply cost** (no server): with 100 / 1,000 / 10,000 flags (the documents
   of ``bench_scale``), one flag toggled: the full document and the delta (JSON and gzip),
   and what a provider spends applying each (decode + ``parse_ruleset(previous=...)``; the
   delta ``parse_delta``, the engine applying it to the compiled form). Median of 5.
2. **Fan-out**: ``uvicorn flagapp.asgi:application --workers 2`` (PostgreSQL when it answers
   on 127.0.0.1:5432, else SQLite; Redis db 9 as cache, notifier and rate-limit store; the
   **default rate limits**) with 100 / 1,000 / 5,000 SSE streams of one key held by an
   asyncio client in this process. A change is stored as the next snapshot and announced
   through ``flagapp.publishing.announce`` with the parsed ruleset and the previous snapshot
   (what a publish does after its commit, the publisher's delta included; the compile before
   it is measured by ``bench_scale``). Timed per stream from the announce to the
   moment the stream holds the new rules: with deltas (``A-IM: flagapp-delta``), the
   announcement carrying the delta; without (a provider from before deltas), the announcement
   plus its re-fetch of the full document. p50 / p99 / max over ``CHANGES`` changes, refused
   connections, server CPU and RSS. Each row is bounded by ``ROW_SECONDS``.
3. **A polling fleet**: 1,000 keep-alive clients of one key, each ``GET /sdk/v1/ruleset``
   with its ETag once per second for ``POLL_SECONDS``: statuses (304 vs 429) and the server's
   CPU in % of one core.

Run: ``python -m benchmarks scale`` (with bench_scale) or ``python -m benchmarks delivery``.
``FLAGAPP_BENCH_DELIVERY_STREAMS=100,1000`` for fewer stream counts,
``FLAGAPP_BENCH_DELIVERY_FLAGS=1000`` for the fan-out's environment size.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._server_child import SUFFIX, run_child
from benchmarks._table import print_table

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/9"
PG_DB = "flagapp_bench_delivery" + SUFFIX
SIZES = (100, 1000, 10000)
STREAMS = tuple(
    int(s) for s in os.environ.get("FLAGAPP_BENCH_DELIVERY_STREAMS", "100,1000,5000").split(",")
)
FANOUT_FLAGS = int(os.environ.get("FLAGAPP_BENCH_DELIVERY_FLAGS", "1000"))
#: which server tables: "polling", "served" (change -> served per size), "fanout"
PARTS = os.environ.get("FLAGAPP_BENCH_DELIVERY_PARTS", "polling,served,fanout").split(",")
CHANGES = 5
ROW_SECONDS = 120.0
CHANGE_TIMEOUT = 20.0
POLLERS = 1000
POLL_SECONDS = 10.0
TARGET_P99_S = 1.0
TARGET_POLL_CPU = 50.0

_SETTINGS = """
from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {DATABASES!r}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": {REDIS_URL!r}, "KEY_PREFIX": "flagapp-bench-delivery"}}}}
FLAGAPP = {{
    "ENVIRONMENT": "production",
    "NAMESPACE": "bench-delivery",
    "NOTIFIER": "redis",
    "REDIS_URL": {REDIS_URL!r},
    "RATE_LIMIT_STORE": "redis",
    "RECONCILE_IN_PROCESS": False,
}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "handlers": {{"null": {{"class": "logging.NullHandler"}}}},
           "root": {{"handlers": ["null"]}},
           "loggers": {{"flagapp": {{"handlers": ["null"], "propagate": False}},
                       "django": {{"handlers": ["null"], "propagate": False}}}}}}
"""


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


# --------------------------------------------------------------------------- 1. deltas


def _median_ms(fn: Any, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def _delta_table() -> None:
    from benchmarks.bench_scale import document
    from openfeature_provider.engine import parse_ruleset
    from openfeature_provider.engine.delta import apply_delta, make_delta, parse_delta
    from openfeature_provider.engine.swap import loads

    rows: dict[str, list[str]] = {}
    for n in SIZES:
        v1 = document(n, 1)
        v2 = json.loads(json.dumps(v1))
        v2["version"], v2["etag"] = 2, "bench-2"
        key = next(iter(v2["flags"]))
        v2["flags"][key]["enabled"] = not v2["flags"][key]["enabled"]
        full = json.dumps(v2, separators=(",", ":")).encode()
        delta = json.dumps(make_delta(v1, v2), separators=(",", ":")).encode()
        held = parse_ruleset(v1)

        def by_full(full: bytes = full, held: Any = held) -> Any:
            return parse_ruleset(loads(full), previous=held)

        def by_delta(delta: bytes = delta, held: Any = held) -> Any:
            # what a provider does with a 226 or an inline delta: applied to the compiled
            # form (the engine's parse_delta), not to a document
            return parse_delta(loads(delta), previous=held)

        assert set(by_full().flags) == set(by_delta().flags)
        assert apply_delta(v1, json.loads(delta)) == v2
        figures = {
            "full document JSON KiB": f"{len(full) / 1024:,.1f}",
            "full document gzip KiB": f"{len(gzip.compress(full)) / 1024:,.1f}",
            "delta JSON KiB (one flag toggled)": f"{len(delta) / 1024:,.2f}",
            "delta gzip KiB": f"{len(gzip.compress(delta)) / 1024:,.2f}",
            "provider apply, full document ms": f"{_median_ms(by_full):,.1f}",
            "provider apply, delta ms": f"{_median_ms(by_delta):,.1f}",
            "load average": _load(),
        }
        for label, value in figures.items():
            rows.setdefault(label, []).append(value)
    print_table(
        "delivery: delta vs full document (median of 5; apply = decode + parse_ruleset(previous) "
        "for the document, decode + parse_delta(previous) for the delta)",
        ["flags", *(f"{n:,}" for n in SIZES)],
        [[label, *values] for label, values in rows.items()],
    )


# --------------------------------------------------------------------------- parent side


def main() -> None:
    _delta_table()
    run_child(
        "from benchmarks.bench_scale_delivery import _driver; _driver()",
        label="bench_scale_delivery",
        settings=_SETTINGS.replace("bench-delivery", "bench-delivery" + SUFFIX),
        redis_url=REDIS_URL,
        redis_patterns=(f"flagapp-bench-delivery{SUFFIX}:*", f"flagapp:bench-delivery{SUFFIX}:*"),
        pg_db=PG_DB,
        timeout=1500,
    )


# --------------------------------------------------------------------------- child side


class _Publisher:
    """Stores the next snapshot of ``FANOUT_FLAGS`` flags (one flag toggled) and announces it."""

    def __init__(self, env: Any) -> None:
        from benchmarks.bench_scale import document
        from flagapp.documents import compute_etag

        self.env = env
        self.doc = document(FANOUT_FLAGS, 1)
        self.doc["environment"] = "production"
        self.doc["etag"] = compute_etag(self.doc["flags"], self.doc["segments"])
        self.keys = list(self.doc["flags"])
        from flagapp import publishing

        latest = publishing.latest("production")
        self.version = latest.version if latest is not None else 0
        self.first = self.version + 1

    def publish(self) -> float:
        from flagapp import publishing
        from flagapp.documents import compute_etag
        from flagapp.models import Snapshot
        from openfeature_provider.engine import parse_ruleset

        self.version += 1
        if self.version > self.first:
            key = self.keys[self.version % len(self.keys)]
            self.doc["flags"][key]["enabled"] = not self.doc["flags"][key]["enabled"]
            self.doc["etag"] = compute_etag(self.doc["flags"], self.doc["segments"])
        self.doc["version"] = self.version
        previous = publishing.latest("production")
        ruleset = parse_ruleset(self.doc)  # what the publish parsed (before the announce)
        snap = Snapshot.objects.create(
            environment=self.env,
            version=self.version,
            etag=self.doc["etag"],
            document=json.dumps(self.doc, separators=(",", ":")),
        )
        started = time.monotonic()
        # after the commit, as a publish does: the delta from the previous version is
        # computed once here and travels with the announcement (Redis) to every worker
        publishing.announce(snap, "production", ruleset, previous=previous)
        return started


async def _open_stream(port: int, token: str, deltas: bool) -> tuple[Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
    extra = "A-IM: flagapp-delta\r\n" if deltas else ""
    writer.write(
        (
            f"GET /sdk/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        writer.close()
        raise ConnectionRefusedError(status.decode().strip())
    while (await reader.readline()).strip():
        pass  # headers
    return reader, writer


async def _fetch_full(port: int, token: str, etag: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
    writer.write(
        (
            f"GET /sdk/v1/ruleset HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f'If-None-Match: "{etag}"\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n'
        ).encode()
    )
    await writer.drain()
    await reader.read()  # to the end (Connection: close)
    writer.close()


class _Stream:
    def __init__(self) -> None:
        self.version = 0
        self.etag = ""
        self.got: dict[int, float] = {}


async def _follow(port: int, token: str, deltas: bool, s: _Stream, reader: Any) -> None:
    data = ""
    while True:
        line = await reader.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if text.startswith("data: "):
            data = text[6:]
        elif text == "" and data:
            try:
                msg = json.loads(data)
            except ValueError:
                data = ""
                continue
            data = ""
            if not isinstance(msg, dict) or "version" not in msg:
                continue
            version = int(msg["version"])
            if s.version and version > s.version:
                if not deltas or "delta" not in msg:
                    await _fetch_full(port, token, s.etag)  # the re-fetch of an older provider
                s.got[version] = time.monotonic()
            s.version, s.etag = version, msg["etag"]


def _fanout_row(
    port: int, token: str, publisher: _Publisher, n: int, deltas: bool, pid: int
) -> list[str]:
    from benchmarks.bench_server import _percentile, _tree_cpu_seconds

    async def run() -> list[str]:
        streams = [_Stream() for _ in range(n)]
        open_streams: list[_Stream] = []
        tasks: list[asyncio.Task[None]] = []
        writers: list[Any] = []
        refused = 0
        deadline = time.monotonic() + ROW_SECONDS
        for i in range(0, n, 100):  # connect in batches (a fleet does not connect in one ms)
            results = await asyncio.gather(
                *(_open_stream(port, token, deltas) for _ in range(i, min(n, i + 100))),
                return_exceptions=True,
            )
            for s, result in zip(streams[i : i + 100], results, strict=False):
                if isinstance(result, BaseException):
                    refused += 1
                    continue
                reader, writer = result
                open_streams.append(s)
                writers.append(writer)
                tasks.append(asyncio.create_task(_follow(port, token, deltas, s, reader)))
        # wait until every stream has its first announcement
        while time.monotonic() < deadline and not all(s.version for s in open_streams):
            await asyncio.sleep(0.05)
        latencies: list[float] = []
        missed = 0
        cpu0 = _tree_cpu_seconds(pid)
        wall0 = time.monotonic()
        for _ in range(CHANGES):
            if time.monotonic() > deadline:
                break
            started = await asyncio.to_thread(publisher.publish)
            version = publisher.version
            until = time.monotonic() + CHANGE_TIMEOUT
            while time.monotonic() < until and not all(version in s.got for s in open_streams):
                await asyncio.sleep(0.02)
            for s in open_streams:
                if version in s.got:
                    latencies.append(s.got[version] - started)
                else:
                    missed += 1
            await asyncio.sleep(0.5)
        cpu = (_tree_cpu_seconds(pid) - cpu0) / max(1e-9, time.monotonic() - wall0) * 100
        for t in tasks:
            t.cancel()
        for w in writers:
            w.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        ok = latencies and not missed and not refused
        p99 = _percentile(latencies, 99)
        verdict = "ok" if ok and p99 <= TARGET_P99_S else "MISSED"
        return [
            f"{n:,}",
            "delta inline" if deltas else "re-fetch (old provider)",
            str(refused),
            str(missed),
            f"{_percentile(latencies, 50) * 1000:,.0f}",
            f"{p99 * 1000:,.0f}",
            f"{max(latencies, default=float('nan')) * 1000:,.0f}",
            f"{cpu:.0f}",
            f"{_rss_mib(pid):,.0f}",
            _load(),
            verdict,
        ]

    return asyncio.run(run())


def _rss_mib(pid: int) -> float:
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _pollers(port: int, token: str, etag: str, pid: int) -> list[list[str]]:
    from benchmarks.bench_server import _tree_cpu_seconds

    request = (
        f"GET /sdk/v1/ruleset HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f'If-None-Match: "{etag}"\r\nAccept-Encoding: gzip\r\n\r\n'
    ).encode()
    statuses: dict[int, int] = {}

    async def poller(i: int, stop_at: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(i / POLLERS)  # spread over the second, as independent instances
        next_at = time.monotonic()
        try:
            while time.monotonic() < stop_at:
                writer.write(request)
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()).strip():
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            writer.close()

    async def run() -> float:
        stop_at = time.monotonic() + 1.5 + POLL_SECONDS
        tasks = [asyncio.create_task(poller(i, stop_at)) for i in range(POLLERS)]
        await asyncio.sleep(1.5)  # connected and spread out
        cpu0, t0 = _tree_cpu_seconds(pid), time.monotonic()
        statuses.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        return (_tree_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100

    cpu = asyncio.run(run())
    total = sum(statuses.values())
    verdict = "ok" if cpu < TARGET_POLL_CPU and statuses.get(429, 0) == 0 else "MISSED"
    return [
        [
            f"{POLLERS:,}",
            f"{total / POLL_SECONDS:,.0f}",
            str(statuses.get(304, 0)),
            str(statuses.get(429, 0)),
            str(total - statuses.get(304, 0) - statuses.get(429, 0)),
            f"{cpu:.0f}",
            f"{TARGET_POLL_CPU:.0f}",
            _load(),
            verdict,
        ]
    ]


# ---------------------------------------------------- 4. change -> served, per environment size

_PROVIDER = """
import sys, time
from openfeature_provider.remote import StreamingSource

class Listener:
    def on_snapshot(self, ruleset):
        print(f"{ruleset.version} {time.time():.6f}", flush=True)

    def on_error(self, exc, fatal=False):
        print(f"error {exc!r}", file=sys.stderr, flush=True)

source = StreamingSource(sys.argv[1], sys.argv[2])
source.start(Listener())
sys.stdin.read()  # until the benchmark closes it
source.stop()
"""


def _environment_of(n: int) -> tuple[Any, str]:
    """An environment of ``n`` flags shaped like bench_scale's server part (bulk-inserted),
    published once in full, and an SDK key for it."""
    from django.contrib.auth.models import Group

    from benchmarks.bench_scale import insert_flags
    from flagapp import publishing, services
    from flagapp.services import sdk_keys

    owner, _ = Group.objects.get_or_create(name="bench-served")
    env = services.create_environment(key=f"scale-{n}", name=f"{n}", actor=None, reason="b")
    insert_flags(env, owner, n, key_prefix=f"served{n}")
    publishing.publish(env)
    _, token = sdk_keys.create_sdk_key(env, name=f"served-{n}", actor=None, reason="bench")
    return env, token


def _served_column(port: int, pid: int, n: int) -> dict[str, str]:
    """Change (services.set_flag_enabled in this process, publish on commit: PostgreSQL,
    Redis) -> a streaming provider in its own process holds the new rules."""
    import select

    from flagapp import services
    from flagapp.models import Flag

    env, token = _environment_of(n)
    rss_before = _rss_mib(pid)
    provider = subprocess.Popen(
        [sys.executable, "-c", _PROVIDER, f"http://127.0.0.1:{port}", token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=str(REPO),
        text=True,
    )
    assert provider.stdout is not None
    seen: dict[int, float] = {}

    def read_until(version: int, timeout: float) -> None:
        until = time.monotonic() + timeout
        while version not in seen and time.monotonic() < until:
            ready, _, _ = select.select([provider.stdout], [], [], 0.05)
            if ready:
                line = provider.stdout.readline()  # type: ignore[union-attr]
                if line:
                    v, at = line.split()
                    seen[int(v)] = float(at)

    try:
        from flagapp import publishing

        first = publishing.latest(env.key)
        assert first is not None
        read_until(first.version, 60)
        flag = Flag.objects.get(key=f"served{n}.flag-00000")
        served: list[float] = []
        published: list[float] = []
        enabled = True
        for _ in range(CHANGES):
            enabled = not enabled
            t0 = time.time()
            services.set_flag_enabled(flag, env, enabled, actor=None, reason="bench")
            published.append(time.time() - t0)
            latest = publishing.latest(env.key)
            assert latest is not None
            read_until(latest.version, CHANGE_TIMEOUT)
            if latest.version in seen:
                served.append(seen[latest.version] - t0)
            time.sleep(0.3)
        with open(f"/proc/{provider.pid}/status") as fh:
            provider_rss = next(int(x.split()[1]) for x in fh if x.startswith("VmRSS:")) / 1024
        from benchmarks.bench_server import _percentile

        return {
            "change -> published ms (median)": f"{statistics.median(published) * 1e3:,.0f}",
            "change -> served by a streaming provider, p50 ms": (
                f"{_percentile(served, 50) * 1e3:,.0f}" if served else "missed"
            ),
            "change -> served, max ms": f"{max(served) * 1e3:,.0f}" if served else "missed",
            "changes served": f"{len(served)} of {CHANGES}",
            "server RSS MiB (2 workers + parent)": f"{_rss_mib(pid):,.0f}",
            "server RSS added by this environment, MiB": f"{_rss_mib(pid) - rss_before:,.0f}",
            "provider process RSS MiB": f"{provider_rss:,.0f}",
            "load average": _load(),
        }
    finally:
        if provider.stdin is not None:
            provider.stdin.close()
        try:
            provider.wait(10)
        except subprocess.TimeoutExpired:
            provider.kill()


def _served_table(port: int, pid: int) -> None:
    columns = [_served_column(port, pid, n) for n in SIZES]
    print_table(
        f"delivery: change -> served ({CHANGES} changes per size; services.set_flag_enabled "
        "with its publish in the benchmark process, a StreamingSource with deltas in its own "
        "process)",
        ["flags", *(f"{n:,}" for n in SIZES)],
        [[label, *(c[label] for c in columns)] for label in columns[0]],
    )


def _driver() -> None:
    import django

    django.setup()
    from django.core.cache import caches
    from django.core.management import call_command

    from benchmarks.bench_server import _free_port, _start_server, _stop_server, _wait_ready
    from flagapp import services
    from flagapp.services import sdk_keys

    call_command("migrate", verbosity=0)
    caches["default"].clear()
    env = services.create_environment(key="production", name="Production", actor=None, reason="b")
    _, token = sdk_keys.create_sdk_key(env, name="fleet", actor=None, reason="bench")
    publisher = _Publisher(env)
    publisher.publish()
    port = _free_port()
    proc = _start_server(port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", token, proc)
        print(
            "\ndelivery: uvicorn --workers 2 (httptools, uvloop); "
            f"{os.environ.get('FLAGAPP_BENCH_DB')}; Redis cache + notifier + rate-limit store; "
            f"default rate limits; {FANOUT_FLAGS:,} flags; clients in one asyncio process on "
            f"the same {os.cpu_count()} CPUs"
        )
        if "polling" in PARTS:
            print_table(
                f"delivery: polling fleet ({POLLERS:,} clients of one key, every 1 s with ETag, "
                f"{POLL_SECONDS:.0f} s)",
                [
                    "pollers",
                    "req/s",
                    "304",
                    "429",
                    "other",
                    "server CPU % of a core",
                    "target <",
                    "load",
                    "verdict",
                ],
                _pollers(port, token, publisher.doc["etag"], proc.pid),
            )
        if "served" in PARTS:
            _served_table(port, proc.pid)
        rows = []
        for n in STREAMS if "fanout" in PARTS else ():
            for deltas in (True, False):
                rows.append(_fanout_row(port, token, publisher, n, deltas, proc.pid))
                print("  ", " | ".join(rows[-1]), flush=True)
        if not rows:
            return
        print_table(
            f"delivery: SSE fan-out, announce -> stream holds the new rules ({CHANGES} changes, "
            f"target p99 <= {TARGET_P99_S:.0f} s)",
            [
                "streams",
                "client",
                "refused",
                "missed",
                "p50 ms",
                "p99 ms",
                "max ms",
                "server CPU %",
                "server RSS MiB",
                "load",
                "verdict",
            ],
            rows,
        )
    finally:
        _stop_server(proc)


if __name__ == "__main__":
    main()
