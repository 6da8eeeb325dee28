"""Server time of the admin pages added for issue 13: playground, timeline, audit log, the
flag page (per-environment cards, 10 environments) and the flag list (first page).

Flags are created through ``flagapp.services`` (each with two rules, one on a segment with a
rollout) in one environment, and one flag gets 100 state versions. Timed with Django's test
client (whole request: middleware, view, template), median of a few runs:

* playground: POST evaluating one context — the page lists 200 flags, the explainer runs
  on those; the snapshot is the one this process already holds (warm);
* playground download: every flag as ``flagapp-eval --explain`` lines (streamed);
* timeline of the flag with 100 versions;
* audit log: the first page (100 rows), and the whole CSV export (streamed), timed, then
  once more under tracemalloc for its peak Python memory — it must not grow with the
  history (the response is drained chunk by chunk, as a WSGI server sends it).

Second table (issue 13 part 6): the segment page of the segment every flag's rule uses
(through another segment for half of them: the nested walk; its first page of 100 rules),
the SDK keys list (50 keys), and the promote preview from that environment to an empty
second one (every flag changes; its first page of 100), wall and CPU time with the load
average.

Run: ``python -m benchmarks admin_pages`` (``FLAGAPP_BENCH_ADMIN_FLAGS=1000,10000``).
"""

from __future__ import annotations

import io
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks._table import print_table

SIZES = tuple(int(n) for n in os.environ.get("FLAGAPP_BENCH_ADMIN_FLAGS", "1000,10000").split(","))
REPEATS = 5

urlpatterns: list[Any] = []


def _ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _wall_cpu(fn: Callable[[], object], repeats: int = REPEATS) -> str:
    """Median wall and CPU (this process: the request is served in-process) milliseconds:
    on a shared machine the wall time is mostly waiting for a core."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return f"{statistics.median(walls):.0f} / {statistics.median(cpus):.0f}"


def _settings() -> dict[str, Any]:
    return {
        "ROOT_URLCONF": "benchmarks.bench_admin_pages",
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
    }


def main() -> None:
    from benchmarks._django import configure_django

    configure_django()
    from django.contrib import admin
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client, override_settings
    from django.urls import path

    from flagapp import publishing, services
    from flagapp.evaluation import cache
    from flagapp.models import Environment, Flag, Segment

    urlpatterns[:] = [path("admin/", admin.site.urls)]
    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    reason = "benchmark"
    owner, _ = Group.objects.get_or_create(name="bench-admin")
    env = Environment.objects.filter(key="bench-admin").first() or services.create_environment(
        key="bench-admin", name="Bench admin", actor=None, reason=reason
    )
    if not Segment.objects.filter(key="bench-admin-beta").exists():
        services.create_segment(
            key="bench-admin-beta", name="Beta", include=["u1"], actor=None, reason=reason,
            conditions=[{"attr": "email", "op": "ends_with", "values": ["@corp.example"]}],
        )  # fmt: skip
    rules: list[dict[str, Any]] = [
        {"when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
         "serve": {"variant": "on"}},
        {"when": [{"op": "in_segment", "values": ["bench-admin-beta"]}],
         "serve": {"rollout": {"weights": [{"variant": "on", "weight": 10},
                                           {"variant": "off", "weight": 90}]}}},
    ]  # fmt: skip
    user = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "b@example.com", "x"
    )
    if not Segment.objects.filter(key="bench-admin-nested").exists():
        services.create_segment(
            key="bench-admin-nested", name="Nested", actor=None, reason=reason,
            conditions=[{"op": "in_segment", "values": ["bench-admin-beta"]}],
        )  # fmt: skip
    nested_rules = [dict(rules[0]), {**rules[1], "when": [
        {"op": "in_segment", "values": ["bench-admin-nested"]}]}]  # fmt: skip
    from flagapp.models import SdkKey
    from flagapp.services import sdk_keys

    for i in range(50 - SdkKey.objects.filter(environment=env).count()):
        sdk_keys.create_sdk_key(env, name=f"service-{i}", actor=None, reason=reason)
    rows = []
    related = []
    created = Flag.objects.filter(key__startswith="bench.admin.").count()
    with override_settings(**_settings()):
        client = Client()
        client.force_login(user)
        for size in SIZES:
            with transaction.atomic():
                while created < size:
                    flag = services.create_flag(
                        key=f"bench.admin.flag-{created}", name="bench", owner=owner,
                        flag_type="ops", actor=None, reason=reason,
                    )  # fmt: skip
                    services.update_flag_state(
                        flag, env, actor=None, reason=reason, enabled=True,
                        rules=nested_rules if created % 2 else rules,
                    )  # fmt: skip
                    created += 1
            target = Flag.objects.get(key="bench.admin.flag-0")
            with transaction.atomic():
                for i in range(100 - target.states.get(environment=env).version):
                    services.update_flag_state(
                        target, env, actor=None, reason=f"step {i}",
                        fallthrough={"rollout": {"weights": [
                            {"variant": "on", "weight": i % 100 + 1},
                            {"variant": "off", "weight": 100 - i % 100}]}},
                    )  # fmt: skip
            _overview_fixture(target, env, size, user)
            publishing.publish(env)
            cache.clear_cache()
            cache.get_ruleset(env.key)  # what a serving process holds
            rows.append((size, *_measure(client, env.key, target.pk)))
            related.append((size, *_measure_related(client, env)))
    print_table(
        "Admin pages, server time (ms, median; SQLite in memory)",
        ["flags", "playground", "playground .jsonl", "timeline (100 versions)", "audit log p1",
         "audit CSV (all)", "CSV size", "CSV peak mem", "flag page (10 envs)",
         "flag list p1 (100 rows)"],
        rows,
    )  # fmt: skip
    print_table(
        "Admin pages of issue 13 part 6, server time (ms, median; wall / CPU; SQLite in memory)",
        ["flags", "segment page (every flag uses it; 100 shown)", "rules using it",
         "SDK keys list (50)", "promote preview (all flags change; 100 shown)", "load avg"],
        related,
    )  # fmt: skip


def _measure_related(client: Any, env: Any) -> tuple[Any, ...]:
    from flagapp import services
    from flagapp.models import Environment, Segment

    other = Environment.objects.filter(key="bench-admin-2").first() or services.create_environment(
        key="bench-admin-2", name="Bench admin 2", actor=None, reason="benchmark"
    )
    beta = Segment.objects.get(key="bench-admin-beta")
    seg_url = f"/admin/flagapp/segment/{beta.pk}/change/"
    segment = _wall_cpu(lambda: _ok(client.get(seg_url)))
    listed = services.segment_usage_page(beta.key, limit=1).total
    keys = _ms(lambda: _ok(client.get("/admin/flagapp/sdkkey/")))
    query = {"source": env.key, "target": other.key, "include_enabled": "on"}
    promote = _wall_cpu(lambda: _ok(client.get("/admin/flagapp/environment/promote/", query)))
    return segment, listed, keys, promote, f"{os.getloadavg()[0]:.1f}"


def _overview_fixture(target: Any, env: Any, size: int, user: Any) -> None:
    """For the flag page and the flag list (flagapp.admin.overview): the target flag in ten
    environments (nine more, each with a rule, an open change request and evaluation
    counts) and an evaluation count for every flag of the first environment."""
    from django.db import transaction
    from django.utils import timezone

    from flagapp import services
    from flagapp.models import ChangeRequest, Environment, Flag, FlagEvaluationStat
    from flagapp.policy import GrantedApproval

    now = timezone.now()
    with transaction.atomic():
        for i in range(9):
            key = f"bench-admin-e{i}"
            if Environment.objects.filter(key=key).exists():
                continue
            extra = services.create_environment(key=key, name=key, actor=None, reason="bench")
            services.update_flag_state(
                target, extra, actor=None, reason="bench", enabled=True,
                rules=[{"when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                        "serve": {"variant": "on"}}],
                change_request=GrantedApproval(),
            )  # fmt: skip
            ChangeRequest.objects.create(
                flag=target, flag_key=target.key, environment=extra, environment_key=key,
                kind="update_flag_state", payload={"params": {"enabled": False}}, reason="bench",
                author=user,
            )  # fmt: skip
            FlagEvaluationStat.objects.create(
                environment=extra, flag_key=target.key, count=i, last_evaluated_at=now
            )
        have = set(
            FlagEvaluationStat.objects.filter(environment=env).values_list("flag_key", flat=True)
        )
        FlagEvaluationStat.objects.bulk_create(
            FlagEvaluationStat(environment=env, flag_key=k, count=7, last_evaluated_at=now)
            for k in Flag.objects.filter(key__startswith="bench.admin.").values_list(
                "key", flat=True
            )[:size]
            if k not in have
        )


def _measure(client: Any, env_key: str, flag_pk: int) -> tuple[Any, ...]:
    data = {"environment": env_key, "context": '{"targetingKey": "u7", "plan": "pro"}'}
    url = "/admin/flagapp/snapshot/playground/"
    playground = _ms(lambda: _ok(client.post(url, {**data, "_evaluate": "1"})))
    download = _ms(lambda: _drain(client.post(url, {**data, "_jsonl": "1"})), 3)
    timeline_url = f"/admin/flagapp/flag/{flag_pk}/timeline/"
    timeline = _ms(lambda: _ok(client.get(timeline_url)))
    audit = _ms(lambda: _ok(client.get("/admin/flagapp/flag/audit-log/")))
    started = time.perf_counter()
    size_bytes = _drain(client.get("/admin/flagapp/flag/audit-log/", {"export": "csv"}))
    export_ms = (time.perf_counter() - started) * 1000
    tracemalloc.start()  # a second export, traced (tracing slows it several times)
    _drain(client.get("/admin/flagapp/flag/audit-log/", {"export": "csv"}))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    flag_page = _ms(lambda: _ok(client.get(f"/admin/flagapp/flag/{flag_pk}/change/")))
    flag_list = _ms(lambda: _ok(client.get("/admin/flagapp/flag/")))
    return (
        playground, download, timeline, audit, export_ms,
        f"{size_bytes / 1e6:.1f} MB", f"{peak / 1e6:.1f} MB", flag_page, flag_list,
    )  # fmt: skip


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.status_code
    return response


def _drain(response: Any) -> int:
    assert response.status_code == 200, response.status_code
    return sum(len(chunk) for chunk in response.streaming_content)


if __name__ == "__main__":
    main()
