"""The SDK server surfaces under the production server setup of docs/deploy.md, on loopback.

What runs: ``uvicorn flagapp.asgi:application --workers 2 --http httptools --loop uvloop``
(the example project's settings with DEBUG off, PostgreSQL database ``flagapp_bench`` when the
server at 127.0.0.1:5432 answers — else a SQLite file —, Redis at 127.0.0.1:6379 db 9 as the
shared cache, the rate-limit store and the pub/sub notifier). Rate limits stay on (set high
enough not to refuse), so their Redis round trips are part of every figure.

Measured, all in one run (about a minute):

1. Change propagation: a flag is flipped through ``flagapp.services`` in this process and we
   time until a streaming ``FlagappProvider`` and a polling one (1 s interval) serve the new
   value — p50/p99 over 30 changes. Target: streaming p99 <= 1 s.
2. Throughput with N concurrent keep-alive clients (a small asyncio HTTP/1.1 client in this
   process, sharing the machine's 2 cores with the server): ``GET /sdk/v1/ruleset`` answered
   304, and ``POST /ofrep/v1/evaluate/flags/{key}``. Target: >= 1,000 OFREP evaluations/s.
3. Snapshot compile time and size for 10,000 flags (``flagapp.snapshot.compile_environment``,
   the engine's parse, and a full ``publish``).

Django is configured in a child interpreter (``python -m benchmarks`` may already have
configured it differently for another benchmark); ``main()`` starts it and relays its tables.
Run: ``python -m benchmarks server``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._server_child import SUFFIX, redis_up, run_child
from benchmarks._table import print_table

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/9"
PG_DB = "flagapp_bench" + SUFFIX
CHANGES = 30
POLL_INTERVAL = 1.0
LOAD_SECONDS = 5.0
CONCURRENCY = (8, 32)
N_FLAGS_COMPILE = 10_000
TARGET_STREAM_P99_S = 1.0
TARGET_OFREP_RPS = 1000.0

_SETTINGS = """
from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {DATABASES!r}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": {REDIS_URL!r}, "KEY_PREFIX": "flagapp-bench"}}}}
FLAGAPP = {{
    "ENVIRONMENT": "production",
    "NOTIFIER": "redis",
    "REDIS_URL": {REDIS_URL!r},
    "RATE_LIMIT_STORE": "redis",
    "RATE_LIMITS": {{
        "sdk": {{"rate": 1e6, "burst": 1e6}},
        "ofrep": {{"rate": 1e6, "burst": 1e6}},
        "events": {{"rate": 1e6, "burst": 1e6}},
    }},
}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "handlers": {{"null": {{"class": "logging.NullHandler"}}}},
           "root": {{"handlers": ["null"]}},
           "loggers": {{"flagapp": {{"handlers": ["null"], "propagate": False}},
                       "django": {{"handlers": ["null"], "propagate": False}}}}}}
"""


# --------------------------------------------------------------------------- parent side


_redis_up = redis_up  # older imports


def main() -> None:
    _run_child("from benchmarks.bench_server import _driver; _driver()")


def _run_child(code: str) -> None:
    """Run ``code`` in a fresh interpreter configured with the bench settings."""
    run_child(
        code,
        label="bench_server",
        settings=_SETTINGS.replace("flagapp-bench", "flagapp-bench" + SUFFIX).replace(
            '"ENVIRONMENT": "production",',
            f'"ENVIRONMENT": "production", "NAMESPACE": "bench{SUFFIX}",',
        ),
        redis_url=REDIS_URL,
        redis_patterns=(f"flagapp-bench{SUFFIX}:*", f"flagapp:bench{SUFFIX}:*"),
        pg_db=PG_DB,
        timeout=600,
    )


# --------------------------------------------------------------------------- child side


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _setup_data() -> dict[str, Any]:
    from django.contrib.auth.models import Group
    from django.core.cache import caches
    from django.core.management import call_command

    from flagapp import services
    from flagapp.services import sdk_keys

    call_command("migrate", verbosity=0)
    caches["default"].clear()
    env = services.create_environment(
        key="production", name="Production", actor=None, reason="bench"
    )
    owner = Group.objects.create(name="bench")
    toggle = services.create_flag(
        key="bench.toggle", name="Toggle", owner=owner, actor=None, reason="bench", flag_type="ops"
    )
    services.update_flag_state(
        toggle, env, actor=None, reason="bench", enabled=True, fallthrough={"variant": "off"}
    )
    rules = services.create_flag(
        key="bench.rules",
        name="Rules",
        owner=owner,
        actor=None,
        reason="bench",
        flag_type="ops",
        kind="string",
        variants={"a": "alpha", "b": "beta", "c": "gamma"},
    )
    services.update_flag_state(
        rules,
        env,
        actor=None,
        reason="bench",
        enabled=True,
        rules=[
            {
                "when": [
                    {"attr": "plan", "op": "in", "values": ["enterprise"]},
                    {"attr": "country", "op": "in", "values": ["US", "CA"]},
                ],
                "serve": {"variant": "a"},
            },
            {
                "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                "serve": {
                    "rollout": {
                        "weights": [{"variant": "b", "weight": 50}, {"variant": "c", "weight": 50}]
                    }
                },
            },
        ],
        fallthrough={"variant": "c"},
    )
    _, token = sdk_keys.create_sdk_key(env, name="bench", actor=None, reason="tests")
    return {"env": env, "toggle": toggle, "token": token, "owner": owner}


def _start_server(port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "flagapp.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "2",
    ]
    return subprocess.Popen(cmd, env=dict(os.environ), cwd=str(REPO), start_new_session=True)


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ready(url: str, token: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited")
        try:
            # Several requests so both workers start their Redis listener.
            ok = all(
                httpx.get(f"{url}/sdk/v1/ruleset", headers={"X-API-Key": token}).status_code == 200
                for _ in range(8)
            )
            if ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("uvicorn did not become ready")


def _propagation(url: str, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    from openfeature.evaluation_context import EvaluationContext

    from flagapp import services
    from openfeature_provider import FlagappProvider

    streaming = FlagappProvider(
        url, data["token"], stream=True, poll_interval=300, send_events=False
    )
    polling = FlagappProvider(url, data["token"], poll_interval=POLL_INTERVAL, send_events=False)
    ctx = EvaluationContext(targeting_key="u1")
    for provider in (streaming, polling):
        provider.initialize(ctx)

    def value(provider: FlagappProvider) -> bool:
        return bool(provider.resolve_boolean_details("bench.toggle", False, ctx).value)

    lat: dict[str, list[float]] = {"streaming": [], "polling": []}
    missed = {"streaming": 0, "polling": 0}
    current = value(streaming)
    try:
        for i in range(CHANGES):
            target = not current
            start = time.perf_counter()
            services.update_flag_state(
                data["toggle"],
                data["env"],
                actor=None,
                reason=f"bench change {i}",
                fallthrough={"variant": "on" if target else "off"},
            )
            pending = {"streaming": streaming, "polling": polling}
            deadline = start + 5.0
            while pending and time.perf_counter() < deadline:
                for name, provider in list(pending.items()):
                    if value(provider) is target:
                        lat[name].append(time.perf_counter() - start)
                        del pending[name]
                time.sleep(0.001)
            for name in pending:
                missed[name] += 1
            current = target
            time.sleep(0.05 + (i % 7) * 0.03)  # changes at irregular moments vs. the poll
    finally:
        streaming.shutdown()
        polling.shutdown()
    rows = []
    for name, target_s in (("streaming", TARGET_STREAM_P99_S), ("polling (1 s)", None)):
        key = name.split()[0]
        values = lat[key]
        p99 = _percentile(values, 99) * 1000
        verdict = "-" if target_s is None else ("ok" if p99 <= target_s * 1000 else "MISSED")
        rows.append(
            (
                name,
                len(values),
                missed[key],
                _percentile(values, 50) * 1000,
                p99,
                "-" if target_s is None else f"<= {target_s * 1000:.0f}",
                verdict,
            )
        )
    return rows


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if match:
        length = int(match.group(1))
        if length:
            await reader.readexactly(length)
    elif re.search(rb"(?i)\r\ntransfer-encoding:\s*chunked", head):
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _load(
    port: int, request: bytes, conns: int, seconds: float
) -> tuple[int, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = 0.0
    started = asyncio.Event()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await started.wait()
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(conns)]
    await asyncio.sleep(0.2)
    begin = time.perf_counter()
    stop_at = begin + seconds
    started.set()
    await asyncio.gather(*tasks)
    return len(latencies), latencies, statuses


def _tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of ``pid`` and its children (the uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def _throughput(
    port: int, data: dict[str, Any], etag: str, server_pid: int
) -> list[tuple[Any, ...]]:
    token = data["token"]
    ruleset_304 = (
        f"GET /sdk/v1/ruleset HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f'If-None-Match: "{etag}"\r\nAccept-Encoding: gzip\r\n\r\n'
    ).encode()
    body = json.dumps({"context": {"targetingKey": "user-123", "plan": "pro", "country": "DE"}})
    ofrep = (
        f"POST /ofrep/v1/evaluate/flags/bench.rules HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    rows: list[tuple[Any, ...]] = []
    for label, request, expect in (("ruleset 304", ruleset_304, 304), ("OFREP single", ofrep, 200)):
        asyncio.run(_load(port, request, 4, 1.0))  # warm both workers
        for conns in CONCURRENCY:
            cpu0, client0 = _tree_cpu_seconds(server_pid), time.process_time()
            count, lat, statuses = asyncio.run(_load(port, request, conns, LOAD_SECONDS))
            cpu_ms = (_tree_cpu_seconds(server_pid) - cpu0) / max(1, count) * 1000
            client_ms = (time.process_time() - client0) / max(1, count) * 1000
            rps = count / LOAD_SECONDS
            wrong = sum(n for s, n in statuses.items() if s != expect)
            verdict = "-"
            if label.startswith("OFREP"):
                verdict = "ok" if rps >= TARGET_OFREP_RPS and not wrong else "MISSED"
                if verdict == "MISSED" and not wrong:
                    verdict += " (wall)"
            # What two dedicated cores would sustain at this server CPU cost per request.
            capacity = 2000.0 / cpu_ms if cpu_ms > 0 else float("nan")
            rows.append(
                (
                    label,
                    conns,
                    rps,
                    _percentile(lat, 50) * 1000,
                    _percentile(lat, 99) * 1000,
                    wrong,
                    cpu_ms,
                    client_ms,
                    capacity,
                    verdict,
                )
            )
    return rows


def _timed(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def _compile_10k(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    from django.db import transaction

    from flagapp import snapshot
    from flagapp.models import Environment, Flag, FlagState, TargetingRule, Variant
    from openfeature_provider.engine import parse_ruleset

    env = data["env"]
    with transaction.atomic():
        flags = Flag.objects.bulk_create(
            [
                Flag(
                    key=f"bulk.flag-{i:05d}",
                    name=f"Flag {i}",
                    kind="boolean",
                    flag_type="ops",
                    owner=data["owner"],
                )
                for i in range(N_FLAGS_COMPILE)
            ],
            batch_size=2000,
        )
        Variant.objects.bulk_create(
            [
                Variant(flag=f, key=k, value=v, order=o)
                for f in flags
                for o, (k, v) in enumerate((("on", True), ("off", False)))
            ],
            batch_size=4000,
        )
        envs = list(Environment.objects.all())
        states = FlagState.objects.bulk_create(
            [
                FlagState(flag=f, environment=e, enabled=True, fallthrough={"variant": "off"})
                for f in flags
                for e in envs
            ],
            batch_size=4000,
        )
        TargetingRule.objects.bulk_create(
            [
                TargetingRule(
                    state=s,
                    order=0,
                    rule_id="r1",
                    conditions=[{"attr": "plan", "op": "in", "values": ["pro", "team"]}],
                    serve={"variant": "on"},
                )
                for s in states
                if s.environment_id == env.pk
            ],
            batch_size=4000,
        )
    compile_s, document = _timed(lambda: snapshot.compile_environment(env))
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    parse_s, _ = _timed(lambda: parse_ruleset(text))
    publish_s, snap = _timed(lambda: snapshot.publish(env), repeats=1)
    return [
        ("compile_environment (ORM -> document)", f"{compile_s * 1000:.0f} ms"),
        ("engine parse_ruleset (validate + compile)", f"{parse_s * 1000:.0f} ms"),
        ("publish (compile, validate, store, cache, announce)", f"{publish_s * 1000:.0f} ms"),
        ("document size (JSON)", f"{len(text) / 1024:.0f} KiB"),
        ("document size (gzip, as served)", f"{len(gzip.compress(text)) / 1024:.0f} KiB"),
        ("flags in the snapshot", len(json.loads(snap.document)["flags"])),
    ]


def _driver() -> None:
    import django

    django.setup()
    data = _setup_data()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_server(port)
    try:
        _wait_ready(url, data["token"], proc)
        from flagapp import snapshot

        latest = snapshot.latest("production")
        assert latest is not None
        setup = (
            f"uvicorn flagapp.asgi:application --workers 2 --http httptools --loop uvloop; "
            f"{os.environ.get('FLAGAPP_BENCH_DB')}; Redis cache + notifier + rate limits; "
            f"{os.cpu_count()} CPUs shared with the load generator"
        )
        print(f"\nserver: {setup}")
        print_table(
            f"Change through services.py -> served by the provider ({CHANGES} changes)",
            ["provider", "seen", "missed (>5 s)", "p50 ms", "p99 ms", "target ms", "verdict"],
            _propagation(url, data),
        )
        latest = snapshot.latest("production")
        assert latest is not None
        print_table(
            f"Throughput, {LOAD_SECONDS:.0f} s per row, keep-alive clients on loopback",
            [
                "endpoint",
                "clients",
                "req/s",
                "p50 ms",
                "p99 ms",
                "non-2xx/304",
                "server CPU ms/req",
                "client CPU ms/req",
                "req/s per 2 cores",
                "verdict",
            ],
            _throughput(port, data, latest.etag, proc.pid),
        )
    finally:
        _stop_server(proc)
    print_table(
        f"Snapshot of {N_FLAGS_COMPILE:,} flags (one rule each)",
        ["step", "value"],
        _compile_10k(data),
    )


if __name__ == "__main__":
    main()
