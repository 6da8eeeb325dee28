"""The provider through the real OpenFeature client, against the SDK's InMemoryProvider floor.

For each engine scenario (S1 flag simply on; S2 a 25% rollout; S3 three string variants
50/25/25; S4 rule plan in [enterprise, pro] AND country eq US -> on, else a 10% rollout) it
times ``client.get_*_value`` with FlagappProvider and, in the same run and interleaved, with
openfeature-sdk's InMemoryProvider serving the same flag statically: the floor, i.e. what the
SDK itself costs. Target: ratio <= 1.15 for every scenario. Figures are CPU time per call on
the benchmark thread's clock (time other processes take on a shared machine is not counted),
median of 15 interleaved rounds; the ratio is the median of the per-round ratios.
Contexts are drawn in turn from 10,000 prebuilt ``EvaluationContext`` objects.

Also: S4 with usage counts (``send_usage``, on by default whenever events can be sent: one
``(flag, variant)`` counter bumped per evaluation) and with 1% exposures sampled; the
provider's own resolve cost (no SDK), with and without usage counting; and resident memory
with 10,000 flags loaded.

Run: ``python -m benchmarks provider`` (or ``python -m benchmarks.bench_provider``).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from benchmarks._table import print_table
from benchmarks.bench_engine import contexts, scenario_flags
from openfeature_provider import FlagappProvider, InMemorySource
from openfeature_provider.engine import parse_ruleset
from openfeature_provider.engine.types import FORMAT_VERSION

CALLS = 2_000
REPEATS = 15
TARGET = 1.15

_STATIC_VALUE = {"boolean": True, "string": "control"}


def _doc(flags: dict[str, Any], version: int = 1) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "environment": "bench",
        "version": version,
        "etag": f"bench-{version}",
        "flags": flags,
        "segments": {},
    }


def _eval_contexts() -> list[EvaluationContext]:
    out = []
    for ctx in contexts():
        attrs = {k: v for k, v in ctx.items() if k != "targetingKey"}
        out.append(EvaluationContext(ctx["targetingKey"], attrs))
    return out


def _caller(
    client: OpenFeatureClient, kind: str, key: str, ctxs: list[EvaluationContext]
) -> Callable[[], object]:
    get = client.get_boolean_value if kind == "boolean" else client.get_string_value
    default: Any = False if kind == "boolean" else "default"
    state = [0]
    n = len(ctxs)

    def call() -> object:
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return get(key, default, ctxs[i])

    return call


def _cpu_us(fn: Callable[[], object], calls: int) -> float:
    """Mean CPU microseconds per call of ``fn``, counted on this thread's CPU clock.

    The thread CPU clock does not run while the thread waits for a core, so time other
    processes take on a shared machine is not counted (wall-clock figures there can be 4x
    the real cost and swing by tens of percent between rounds).
    """
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls * 1e6


def _interleaved(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float, float]:
    """a and b timed alternately, so any remaining noise hits both alike.

    Returns the median round of each (CPU time per call) and the median per-round ratio.
    """
    sa, sb, ratios = [], [], []
    for _ in range(REPEATS):
        x = _cpu_us(a, CALLS)
        y = _cpu_us(b, CALLS)
        sa.append(x)
        sb.append(y)
        ratios.append(x / y)
    return statistics.median(sa), statistics.median(sb), statistics.median(ratios)


def _rss_kib() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _memory_rows() -> list[list[object]]:
    flags: dict[str, Any] = {}
    base = scenario_flags()
    templates = list(base.values())
    for i in range(10_000):
        flag = json.loads(json.dumps(templates[i % len(templates)]))
        flag["metadata"] = {"owner": f"team-{i % 50}", "type": "release", "version": i % 17}
        flags[f"team{i % 50}.area{i % 7}.flag-{i}"] = flag
    body = json.dumps(_doc(flags, 2)).encode()
    gc.collect()
    before = _rss_kib()
    provider = FlagappProvider(source=InMemorySource(body), name="flagapp-bench-mem")
    api.set_provider_and_wait(provider, "bench-memory")
    gc.collect()
    after = _rss_kib()
    client = api.get_client("bench-memory")
    assert client.get_boolean_value("team0.area0.flag-0", False, EvaluationContext("u")) is True
    api.clear_providers()
    return [
        ["ruleset JSON size", f"{len(body) / 1024:.0f} KiB"],
        ["RSS before loading", f"{before / 1024:.1f} MiB"],
        ["RSS with 10,000 flags loaded", f"{after / 1024:.1f} MiB"],
        ["delta (parsed + compiled + provider)", f"{(after - before) / 1024:.1f} MiB"],
    ]


def main() -> None:
    flags = scenario_flags()
    kinds = {key: flags[key]["kind"] for key in flags}
    ctxs = _eval_contexts()

    api.clear_providers()
    ours = FlagappProvider(source=InMemorySource(_doc(flags)), name="flagapp-bench")
    api.set_provider_and_wait(ours, "bench-flagapp")
    floor = InMemoryProvider(
        {key: InMemoryFlag("v", {"v": _STATIC_VALUE[kind]}) for key, kind in kinds.items()}
    )
    api.set_provider_and_wait(floor, "bench-floor")
    sampled = FlagappProvider(
        source=InMemorySource(_doc(flags)),
        name="flagapp-bench-sampled",
        event_sink=lambda body: 0,
        exposure_sample_rate=0.01,
        event_capacity=1_000,
    )
    api.set_provider_and_wait(sampled, "bench-sampled")
    counted = FlagappProvider(  # usage counts on (the default with a server), no exposures
        source=InMemorySource(_doc(flags)),
        name="flagapp-bench-counted",
        event_sink=lambda body: 0,
        usage_interval=3600,
    )
    api.set_provider_and_wait(counted, "bench-counted")
    c_counted = api.get_client("bench-counted")
    c_ours = api.get_client("bench-flagapp")
    c_floor = api.get_client("bench-floor")
    c_sampled = api.get_client("bench-sampled")

    rows: list[list[object]] = []
    for label, key in zip(("S1", "S2", "S3", "S4"), flags, strict=True):
        mine, base, ratio = _interleaved(
            _caller(c_ours, kinds[key], key, ctxs), _caller(c_floor, kinds[key], key, ctxs)
        )
        rows.append(
            [f"{label} {key}", mine, base, f"{ratio:.3f}", "ok" if ratio <= TARGET else "OVER"]
        )
    key = "s4.rule-then-rollout"
    mine, base, ratio = _interleaved(
        _caller(c_counted, "boolean", key, ctxs), _caller(c_floor, "boolean", key, ctxs)
    )
    rows.append(
        ["S4 with usage counts", mine, base, f"{ratio:.3f}", "ok" if ratio <= TARGET else "OVER"]
    )
    mine, base, ratio = _interleaved(
        _caller(c_sampled, "boolean", key, ctxs), _caller(c_floor, "boolean", key, ctxs)
    )
    rows.append(
        ["S4 with 1% exposures", mine, base, f"{ratio:.3f}", "ok" if ratio <= TARGET else "OVER"]
    )
    print_table(
        f"provider: client.get_*_value, FlagappProvider vs InMemoryProvider floor "
        f"(target ratio <= {TARGET})",
        ["scenario", "flagapp us", "floor us", "ratio", ""],
        rows,
    )

    # the provider's own share: resolve_* called directly, no SDK around it
    rs = parse_ruleset(_doc(flags))
    assert rs.version == 1
    rows = []
    for label, key in zip(("S1", "S2", "S3", "S4"), flags, strict=True):
        resolve = (
            ours.resolve_boolean_details if kinds[key] == "boolean" else ours.resolve_string_details
        )
        floor_resolve = (
            floor.resolve_boolean_details
            if kinds[key] == "boolean"
            else floor.resolve_string_details
        )
        default: Any = False if kinds[key] == "boolean" else "d"
        mine, base, _ratio = _interleaved(
            _direct(resolve, key, default, ctxs), _direct(floor_resolve, key, default, ctxs)
        )
        rows.append([f"{label} {key}", mine, base])
    key = "s4.rule-then-rollout"
    mine, base, _ratio = _interleaved(
        _direct(counted.resolve_boolean_details, key, False, ctxs),
        _direct(floor.resolve_boolean_details, key, False, ctxs),
    )
    rows.append(["S4 with usage counts", mine, base])
    print_table(
        "provider: resolve_*_details alone (no SDK), vs InMemoryProvider's",
        ["scenario", "flagapp us", "InMemoryProvider us"],
        rows,
    )
    api.clear_providers()

    print_table("provider: resident memory, 10,000 flags", ["what", "value"], _memory_rows())


def _direct(
    resolve: Callable[..., object], key: str, default: Any, ctxs: list[EvaluationContext]
) -> Callable[[], object]:
    state = [0]
    n = len(ctxs)

    def call() -> object:
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return resolve(flag_key=key, default_value=default, evaluation_context=ctxs[i])

    return call


if __name__ == "__main__":
    main()
