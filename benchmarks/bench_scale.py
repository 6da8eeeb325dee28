"""Scale: what one change costs with 100 / 1,000 / 10,000 flags (issue 17).

Each figure is measured in a fresh child interpreter per size and run (so heap size, RSS and
the garbage collector's state belong to that size alone), ``RUNS`` runs per size, and the
table shows the median run. Every row carries the 1-minute load average read when the size's
runs ended: the machine has 2 cores shared with other work, and a figure taken at load 4 is
not one taken at load 0.5.

Provider side (no Django; ``FlagappProvider`` over an ``InMemorySource``; flags built from
the four engine scenarios, every fifth with a segment rule, 20 segments, server-like
metadata):

* document size: canonical JSON and gzip (as served);
* parse: ``parse_ruleset(bytes)`` of the whole document (JSON decode, validate, compile);
* apply: ``InMemorySource.update(bytes)`` of the next version (one flag toggled): decode,
  build the new ``Ruleset``, swap it into the provider, work out ``flags_changed``;
* evaluation stall during a swap: one thread evaluates ``resolve_boolean_details`` in a loop
  and records the gap between consecutive evaluations; the main thread (standing in for the
  poll/stream thread) applies ``SWAPS`` new versions. Max and p99 of the gaps inside the
  swap windows, and the number of full (generation 2) collections they triggered. The same
  again with ``cache_path`` set (the last-known-good file is written on every swap);
* RSS: resident memory added by loading the ruleset into a provider, scaled to 10,000 flags,
  and the RSS after ``SWAPS`` swaps (before any explicit collection: cyclic garbage left by
  replaced rulesets shows here).

Server side (Django configured in the child: SQLite in memory, local-memory cache, the same
settings as bench_snapshot): flags bulk-inserted through the ORM (setting 10,000 flags up
through the services would cost hours: each write validates the whole environment), then
``services.set_flag_enabled`` flips one flag — validation, history, the outbox and the
publish on commit (compile, parse, store, announce, the evaluation cache install). Figures:
wall time of the change until the new snapshot is stored and announced, of which garbage
collection, engine parses per change, and the child's peak RSS.

Run: ``python -m benchmarks scale`` (``FLAGAPP_BENCH_SCALE_SIZES=100,1000`` for fewer sizes,
``FLAGAPP_BENCH_SCALE_RUNS=N`` for more runs).
"""

from __future__ import annotations

import gc
import gzip
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._table import print_table
from openfeature_provider.engine.types import FORMAT_VERSION

REPO = Path(__file__).resolve().parent.parent
SIZES = tuple(
    int(s) for s in os.environ.get("FLAGAPP_BENCH_SCALE_SIZES", "100,1000,10000").split(",")
)
RUNS = int(os.environ.get("FLAGAPP_BENCH_SCALE_RUNS", "3"))
PARTS = os.environ.get("FLAGAPP_BENCH_SCALE_PARTS", "provider,server").split(",")
SWAPS = 8
SWAP_PAUSE_S = 0.15
N_SEGMENTS = 20
STALL_TARGET_MS = 5.0


# ---------------------------------------------------------------------------------------------
# documents


def flags_doc(n: int) -> dict[str, Any]:
    """``n`` flags shaped like the engine scenarios plus segment rules, with metadata."""
    from benchmarks.bench_engine import scenario_flags

    templates = list(scenario_flags().values())
    flags: dict[str, Any] = {}
    for i in range(n):
        flag = json.loads(json.dumps(templates[i % len(templates)]))
        if i % 5 == 0:
            flag.setdefault("rules", []).append(
                {
                    "id": "beta",
                    "when": [{"op": "in_segment", "values": [f"seg-{i % N_SEGMENTS}"]}],
                    "serve": {"variant": next(iter(flag["variants"]))},
                }
            )
        flag["metadata"] = {
            "owner": f"team-{i % 50}",
            "type": "release",
            "risk": "low",
            "version": 1 + i % 17,
        }
        flags[f"team{i % 50}.area{i % 7}.flag-{i}"] = flag
    return flags


def document(n: int, version: int = 1) -> dict[str, Any]:
    segments = {
        f"seg-{j}": {
            "include": [f"user-{j}-{k}" for k in range(5)],
            "exclude": [],
            "when": [{"attr": "email", "op": "ends_with", "values": [f"@corp{j}.example"]}],
        }
        for j in range(N_SEGMENTS)
    }
    return {
        "format": FORMAT_VERSION,
        "environment": "bench",
        "version": version,
        "etag": f"bench-{version}",
        "flags": flags_doc(n),
        "segments": segments,
    }


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class _GcClock:
    """Time spent in the cyclic collector, and the number of full collections, while on."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0
        self._on = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            if info.get("generation") == 2:
                self.full += 1

    def __enter__(self) -> _GcClock:
        self.seconds, self.full, self._on = 0.0, 0, True
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._on = False


# ---------------------------------------------------------------------------------------------
# provider child


def _provider_child(n: int) -> dict[str, Any]:
    import tracemalloc

    from openfeature.evaluation_context import EvaluationContext

    from openfeature_provider import FlagappProvider, InMemorySource
    from openfeature_provider.engine import parse_ruleset
    from openfeature_provider.engine.delta import delta_from_changes

    half = SWAPS // 2
    # v1 loaded; v2.. full documents, then deltas; the same again with cache_path
    full_at = {1, *range(2, 2 + half), 2 + 2 * half, *range(3 + 2 * half, 3 + 3 * half)}
    last = 2 + 4 * half
    base = document(n)
    first_key = next(iter(base["flags"]))
    full: dict[int, bytes] = {}
    deltas: dict[int, bytes] = {}
    previous: dict[str, Any] | None = None
    for v in range(1, last + 1):
        base["version"], base["etag"] = v, f"bench-{v}"
        # each version toggles one flag (a kill switch), as a change on the server would
        base["flags"][first_key] = {**base["flags"][first_key], "enabled": v % 2 == 1}
        if v in full_at:
            full[v] = json.dumps(base, separators=(",", ":"), sort_keys=True).encode()
        elif previous is not None:
            delta = delta_from_changes(
                previous, base, changed_flags=[first_key], changed_segments=[]
            )
            deltas[v] = json.dumps(delta, separators=(",", ":")).encode()
        previous = {**base, "flags": dict(base["flags"])}
    del base, previous
    body = full[1]
    out: dict[str, Any] = {
        "json_kib": len(body) / 1024,
        "gzip_kib": len(gzip.compress(body)) / 1024,
        "delta_kib": len(deltas[2 + half]) / 1024,
    }
    gc.collect()
    rss_before = _rss_kib()
    source = InMemorySource(body)
    provider = FlagappProvider(source=source, name=f"scale-{n}")
    provider.initialize(EvaluationContext())
    gc.collect()
    out["rss_loaded_kib"] = _rss_kib() - rss_before
    out["rss_per_10k_kib"] = out["rss_loaded_kib"] * 10_000 / n
    gc.collect()
    tracemalloc.start()  # after the RSS figure: memory freed here would be reused there
    rs = parse_ruleset(body, keep_raw=False)
    gc.collect()
    out["traced_kib"] = tracemalloc.get_traced_memory()[0] / 1024
    tracemalloc.stop()
    del rs
    parse_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        rs = parse_ruleset(body)
        parse_s.append(time.perf_counter() - t0)
        del rs
    out["parse_ms"] = statistics.median(parse_s) * 1e3
    gc.collect()

    key = next(k for k in provider.snapshot.flags if k.startswith("team1."))  # type: ignore[union-attr]
    ctx = EvaluationContext("user-1", {"plan": "pro", "country": "US"})

    def stall_run(payloads: list[bytes], apply: Callable[[bytes], None]) -> dict[str, Any]:
        stop = threading.Event()
        gaps: list[float] = []
        windows: list[tuple[float, float]] = []
        times = array("d", bytes(8 * 2_000_000))  # raw doubles: no float objects kept
        count = [0]

        def evaluate() -> None:
            resolve = provider.resolve_boolean_details
            clock = time.perf_counter
            i = 0
            limit = len(times)
            while not stop.is_set() and i < limit:
                resolve(key, False, ctx)
                times[i] = clock()
                i += 1
            count[0] = i

        apply_s = []
        with _GcClock() as clock:
            t = threading.Thread(target=evaluate)
            t.start()
            time.sleep(SWAP_PAUSE_S)
            for payload in payloads:
                t0 = time.perf_counter()
                apply(payload)
                t1 = time.perf_counter()
                windows.append((t0, t1))
                apply_s.append(t1 - t0)
                time.sleep(SWAP_PAUSE_S)
            stop.set()
            t.join()
        stamps = times[: count[0]]
        times = array("d")  # the evaluating thread has ended: free its 16 MB
        w = 0
        for a, b in itertools.pairwise(stamps):
            while w < len(windows) and windows[w][1] < a:
                w += 1
            if w < len(windows) and b >= windows[w][0] and a <= windows[w][1]:
                gaps.append(b - a)
        gaps.sort()
        del stamps
        rss = _rss_kib()  # the timing arrays freed; no explicit collection
        return {
            "rss_kib": rss,
            "apply_ms": statistics.median(apply_s) * 1e3,
            "stall_max_ms": (gaps[-1] if gaps else 0.0) * 1e3,
            "stall_p99_ms": (gaps[int(len(gaps) * 0.99)] if gaps else 0.0) * 1e3,
            "stalls_over_1ms": sum(1 for g in gaps if g >= 1e-3),
            "full_gcs": clock.full,
            "gc_ms": clock.seconds * 1e3,
        }

    out.update(_gil_floor(lambda: provider.resolve_boolean_details(key, False, ctx)))
    plain = stall_run([full[v] for v in range(2, 2 + half)], source.update)
    out.update(plain)
    out["rss_after_swaps_kib"] = plain["rss_kib"] - rss_before
    delta = stall_run([deltas[v] for v in range(2 + half, 2 + 2 * half)], source.apply_delta)
    out.update({f"delta_{k}": v for k, v in delta.items()})
    provider.shutdown()
    del source, provider
    gc.collect()

    with tempfile.TemporaryDirectory() as tmp:
        source = InMemorySource(full[2 + 2 * half])
        provider = FlagappProvider(
            source=source, name=f"scale-lkg-{n}", cache_path=os.path.join(tmp, "lkg.json")
        )
        provider.initialize(EvaluationContext())
        lkg = stall_run([full[v] for v in range(3 + 2 * half, 3 + 3 * half)], source.update)
        lkg_delta = stall_run(
            [deltas[v] for v in range(3 + 3 * half, 3 + 4 * half)], source.apply_delta
        )
        provider.shutdown()
    out.update({f"lkg_{k}": v for k, v in lkg.items()})
    out.update({f"lkg_delta_{k}": v for k, v in lkg_delta.items()})
    return out


def _lkg_rss_child(n: int) -> dict[str, Any]:
    """RSS added by loading a provider with ``cache_path`` (its own interpreter: memory freed
    by an earlier provider would be reused and hide the figure)."""
    from openfeature.evaluation_context import EvaluationContext

    from openfeature_provider import FlagappProvider, InMemorySource

    body = json.dumps(document(n), separators=(",", ":"), sort_keys=True).encode()
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        rss_before = _rss_kib()
        provider = FlagappProvider(
            source=InMemorySource(body), cache_path=os.path.join(tmp, "lkg.json")
        )
        provider.initialize(EvaluationContext())
        gc.collect()
        added = _rss_kib() - rss_before
        provider.shutdown()
    return {"lkg_rss_per_10k_kib": added * 10_000 / n}


def _gil_floor(evaluate: Callable[[], object], seconds: float = 1.0) -> dict[str, Any]:
    """The gaps one evaluating thread sees while another thread runs plain Python (no
    ruleset work) for ``seconds``: what sharing the GIL costs on this machine at this load
    (the switch interval, 5 ms by default, plus the OS's scheduling delay). A stall during
    a swap cannot be smaller than this floor."""
    stop = threading.Event()
    times = array("d", bytes(8 * 2_000_000))
    count = [0]

    def loop() -> None:
        clock = time.perf_counter
        i = 0
        while not stop.is_set() and i < 2_000_000:
            evaluate()
            times[i] = clock()
            i += 1
        count[0] = i

    t = threading.Thread(target=loop)
    t.start()
    time.sleep(0.05)
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(1000):
            x += i
    stop.set()
    t.join()
    gaps = sorted(b - a for a, b in itertools.pairwise(times[: count[0]]))
    return {
        "floor_max_ms": gaps[-1] * 1e3 if gaps else 0.0,
        "floor_over_1ms": sum(1 for g in gaps if g >= 1e-3),
    }


# ---------------------------------------------------------------------------------------------
# server child


def insert_flags(env: Any, owner: Any, n: int, *, key_prefix: str, n_segments: int = 0) -> None:
    """Bulk-insert ``n`` boolean flags ``<key_prefix>.flag-NNNNN`` into ``env`` (variants, an
    enabled state serving ``off``, a ``plan in [pro, team]`` rule; with ``n_segments`` every
    fifth flag also gets a 10 % rollout rule on segment ``seg-<i % n_segments>``), through
    the ORM: the services would take minutes at 10,000 flags, and what a benchmark measures
    is one change *after* the environment exists. Shared by the server part here and the
    change -> served table of ``bench_scale_delivery``."""
    from django.db import transaction

    from flagapp.models import Flag, FlagState, TargetingRule, Variant

    with transaction.atomic():
        flags = Flag.objects.bulk_create(
            [
                Flag(key=f"{key_prefix}.flag-{i:05d}", name=f"Flag {i}", kind="boolean",
                     flag_type="ops", owner=owner)
                for i in range(n)
            ],
            batch_size=2000,
        )  # fmt: skip
        Variant.objects.bulk_create(
            [
                Variant(flag=f, key=k, value=v, order=o)
                for f in flags
                for o, (k, v) in enumerate((("on", True), ("off", False)))
            ],
            batch_size=4000,
        )
        states = FlagState.objects.bulk_create(
            [FlagState(flag=f, environment=env, enabled=True, fallthrough={"variant": "off"})
             for f in flags],
            batch_size=4000,
        )  # fmt: skip
        rules = []
        for i, s in enumerate(states):
            rules.append(
                TargetingRule(
                    state=s, order=0, rule_id="paid",
                    conditions=[{"attr": "plan", "op": "in", "values": ["pro", "team"]}],
                    serve={"variant": "on"},
                )
            )  # fmt: skip
            if n_segments and i % 5 == 0:
                rules.append(
                    TargetingRule(
                        state=s, order=1, rule_id="beta",
                        conditions=[{"op": "in_segment", "values": [f"seg-{i % n_segments}"]}],
                        serve={"rollout": {"weights": [{"variant": "on", "weight": 10},
                                                       {"variant": "off", "weight": 90}]}},
                    )
                )  # fmt: skip
        TargetingRule.objects.bulk_create(rules, batch_size=4000)


def _server_child(n: int) -> dict[str, Any]:
    from benchmarks._django import configure_django

    configure_django()
    import io

    from django.contrib.auth.models import Group
    from django.core.management import call_command

    import openfeature_provider.engine.ruleset as engine_ruleset
    import openfeature_provider.engine.validate as engine_validate
    from flagapp import publishing, services
    from flagapp.models import Flag, Snapshot

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    reason = "benchmark"
    owner, _ = Group.objects.get_or_create(name="bench-scale")
    env = services.create_environment(
        key="production", name="Production", actor=None, reason=reason
    )
    for j in range(N_SEGMENTS):
        services.create_segment(
            key=f"seg-{j}",
            name=f"Segment {j}",
            include=[f"user-{j}-{k}" for k in range(5)],
            conditions=[{"attr": "email", "op": "ends_with", "values": [f"@corp{j}.example"]}],
            actor=None,
            reason=reason,
        )
    insert_flags(env, owner, n, key_prefix="bulk", n_segments=N_SEGMENTS)
    publishing.publish(env)
    target = Flag.objects.get(key="bulk.flag-00000")

    parses = [0]
    validated = [0]
    real_parse = engine_ruleset._parse
    real_flag = engine_validate._flag  # validate.py since issue 17's split of ruleset.py

    parse_seconds = [0.0]

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        parses[0] += 1
        started = time.perf_counter()
        try:
            return real_parse(*args, **kwargs)
        finally:
            parse_seconds[0] += time.perf_counter() - started

    def counting_flag(*args: Any, **kwargs: Any) -> Any:
        validated[0] += 1
        return real_flag(*args, **kwargs)

    import openfeature_provider.engine.delta as engine_delta

    real_parse_delta = engine_delta.parse_delta

    def counting_parse_delta(*args: Any, **kwargs: Any) -> Any:
        parses[0] += 1
        started = time.perf_counter()
        try:
            return real_parse_delta(*args, **kwargs)
        finally:
            parse_seconds[0] += time.perf_counter() - started

    engine_ruleset._parse = counting_parse  # type: ignore[assignment]
    engine_validate._flag = counting_flag  # type: ignore[assignment]
    engine_delta.parse_delta = counting_parse_delta  # type: ignore[assignment]
    walls, gcs, counts, flags_validated, parse_times = [], [], [], [], []
    repeats = 3 if n >= 10_000 else 5
    enabled = True
    for _ in range(repeats):
        enabled = not enabled
        before = Snapshot.objects.filter(environment=env).count()
        parses[0] = validated[0] = 0
        parse_seconds[0] = 0.0
        with _GcClock() as clock:
            t0 = time.perf_counter()
            services.set_flag_enabled(target, env, enabled, actor=None, reason=reason)
            wall = time.perf_counter() - t0
        assert Snapshot.objects.filter(environment=env).count() == before + 1, "not published"
        walls.append(wall)
        gcs.append(clock.seconds)
        counts.append(parses[0])
        flags_validated.append(validated[0])
        parse_times.append(parse_seconds[0])
    engine_delta.parse_delta = real_parse_delta  # type: ignore[assignment]
    engine_ruleset._parse = real_parse  # type: ignore[assignment]
    engine_validate._flag = real_flag  # type: ignore[assignment]
    assert Flag.objects.count() == n
    return {
        "change_ms": statistics.median(walls) * 1e3,
        "change_gc_ms": statistics.median(gcs) * 1e3,
        "parses": statistics.median(counts),
        "parse_ms": statistics.median(parse_times) * 1e3,
        "flags_validated": statistics.median(flags_validated),
        "peak_rss_mib": _peak_rss_kib() / 1024,
    }


# ---------------------------------------------------------------------------------------------
# parent


def _child(kind: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_scale", "--child", kind, str(n)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child for {n} flags failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _median_runs(kind: str, n: int, sort_key: str) -> tuple[dict[str, Any], float]:
    runs = [_child(kind, n) for _ in range(RUNS)]
    runs.sort(key=lambda r: r[sort_key])
    return runs[len(runs) // 2], os.getloadavg()[0]


def _columns(
    results: dict[int, tuple[dict[str, Any], float]],
    rows: list[tuple[str, str, Callable[[float], str]]],
    ratio: tuple[int, int] | None = None,
) -> list[list[object]]:
    """One row per field; with ``ratio`` (small, large) and both sizes measured, a last
    column large / small (the issue's "one change at 10,000 flags <= 3x at 100")."""
    table: list[list[object]] = []
    with_ratio = ratio is not None and set(ratio) <= set(SIZES)
    for label, field, fmt in rows:
        row: list[object] = [label, *(fmt(results[n][0][field]) for n in SIZES)]
        if with_ratio and ratio is not None:
            small, large = results[ratio[0]][0][field], results[ratio[1]][0][field]
            row.append(f"{large / small:,.1f}x" if small else "-")
        table.append(row)
    load: list[object] = ["load average (1 min) at the end"]
    load += [f"{results[n][1]:.2f}" for n in SIZES]
    table.append([*load, ""] if with_ratio else load)
    return table


def _ms(v: float) -> str:
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def main() -> None:
    headers = ["flags", *(f"{n:,}" for n in SIZES)]
    print(f"\nscale: {RUNS} child runs per size, median run shown; {os.cpu_count()} CPUs")
    if "provider" in PARTS:
        _provider_table(headers)
    if "server" in PARTS:
        _server_table(headers)
    print(
        f"stall target <= {STALL_TARGET_MS} ms at 10,000 flags; "
        "gaps are wall time between two consecutive evaluations on one thread"
    )


def _provider_table(headers: list[str]) -> None:
    provider = {n: _median_runs("provider", n, "stall_max_ms") for n in SIZES}
    for n in SIZES:
        provider[n][0].update(_median_runs("provider-lkg-rss", n, "lkg_rss_per_10k_kib")[0])
    swaps = SWAPS // 2
    print_table(
        "scale: provider (InMemorySource; one flag toggled per version)",
        [*headers, *(["10,000 / 100"] if {100, 10_000} <= set(SIZES) else [])],
        _columns(
            provider,
            [
                ("snapshot JSON KiB", "json_kib", lambda v: f"{v:,.0f}"),
                ("snapshot gzip KiB", "gzip_kib", lambda v: f"{v:,.1f}"),
                ("delta JSON KiB (one flag)", "delta_kib", lambda v: f"{v:,.2f}"),
                ("parse_ruleset ms (whole document)", "parse_ms", _ms),
                ("apply ms, full document (decode + build + swap)", "apply_ms", _ms),
                ("apply ms, delta (parse_delta + swap)", "delta_apply_ms", _ms),
                ("GIL floor (busy thread, 1 s): max gap ms", "floor_max_ms", _ms),
                ("GIL floor: gaps >= 1 ms", "floor_over_1ms", lambda v: f"{v:.0f}"),
                ("stall during full swaps: max ms", "stall_max_ms", _ms),
                ("stall during full swaps: p99 ms", "stall_p99_ms", lambda v: f"{v:.3f}"),
                (f"gaps >= 1 ms during {swaps} full swaps", "stalls_over_1ms", _count),
                ("stall during delta swaps: max ms", "delta_stall_max_ms", _ms),
                ("stall during delta swaps: p99 ms", "delta_stall_p99_ms", _p99),
                (f"gaps >= 1 ms during {swaps} delta swaps", "delta_stalls_over_1ms", _count),
                (f"full GCs during {swaps} full swaps", "full_gcs", _count),
                ("GC ms during full swaps", "gc_ms", _ms),
                ("with cache_path: apply ms, full", "lkg_apply_ms", _ms),
                ("with cache_path: apply ms, delta", "lkg_delta_apply_ms", _ms),
                ("with cache_path: stall max ms (full)", "lkg_stall_max_ms", _ms),
                ("with cache_path: stall max ms (delta)", "lkg_delta_stall_max_ms", _ms),
                ("with cache_path: gaps >= 1 ms (full)", "lkg_stalls_over_1ms", _count),
                (f"with cache_path: full GCs ({swaps} swaps)", "lkg_full_gcs", _count),
                ("tracemalloc MiB (parsed ruleset)", "traced_kib", _mib),
                ("RSS added by loading, MiB", "rss_loaded_kib", _mib),
                ("RSS added, MiB per 10,000 flags", "rss_per_10k_kib", _mib),
                ("with cache_path: RSS added, MiB per 10,000", "lkg_rss_per_10k_kib", _mib),
                (f"RSS added after {swaps} full swaps, MiB", "rss_after_swaps_kib", _mib),
            ],
            ratio=(100, 10_000),
        ),
    )


def _count(v: float) -> str:
    return f"{v:.0f}"


def _p99(v: float) -> str:
    return f"{v:.3f}"


def _mib(v: float) -> str:
    return f"{v / 1024:.1f}"


def _server_table(headers: list[str]) -> None:
    server = {n: _median_runs("server", n, "change_ms") for n in SIZES}
    print_table(
        "scale: server change -> published (services.set_flag_enabled, publish on commit; "
        "SQLite in memory, LocMem cache)",
        headers,
        _columns(
            server,
            [
                ("change -> published ms", "change_ms", _ms),
                ("of which GC ms", "change_gc_ms", _ms),
                ("of which engine parse ms", "parse_ms", _ms),
                ("engine parses per change (deltas included)", "parses", lambda v: f"{v:.0f}"),
                ("flags validated per change", "flags_validated", lambda v: f"{v:,.0f}"),
                ("child peak RSS MiB", "peak_rss_mib", lambda v: f"{v:.0f}"),
            ],
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        kind, size = sys.argv[2], int(sys.argv[3])
        children = {
            "provider": _provider_child,
            "provider-lkg-rss": _lkg_rss_child,
            "server": _server_child,
        }
        fn = children[kind]
        print(json.dumps(fn(size)))
    else:
        main()
