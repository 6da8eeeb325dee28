"""flagapp.metrics: what /metrics counts, when, and who may read it (issue 14, part 3).

The counters the Prometheus guardrail reads move when an events batch *commits* (never for
a rolled-back or a replayed one), and track events count for the variant the user was on
when they happened. Values are read from prometheus-client's registry of this process as
differences (the registry lives as long as the test process). The multiprocess test runs
real child processes writing to one PROMETHEUS_MULTIPROC_DIR.

The same metrics scraped by a real Prometheus and read by a rollout: test_prometheus_live.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client
from prometheus_client import REGISTRY

from flagapp import metrics
from flagapp.sdk import events as events_module
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import bearer

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[3]
Commit = Callable[..., AbstractContextManager[Any]]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def post(client: Client, token: str, events: list[dict[str, Any]], batch_id: str = "") -> Any:
    extra = {"HTTP_X_FLAGAPP_BATCH_ID": batch_id} if batch_id else {}
    body = json.dumps({"events": events})
    return client.post(
        "/sdk/v1/events", data=body, content_type="application/json", **bearer(token), **extra
    )


def exposure(flag: str, variant: str, user: str, at: datetime | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "exposure", "flag": flag, "variant": variant}
    out["context"] = {"targetingKey": user}
    if at is not None:
        out["timestamp"] = at.isoformat()
    return out


def track(name: str, user: str, val: float | None = None, at: datetime | None = None) -> Any:
    out: dict[str, Any] = {"kind": "tracking", "name": name, "targetingKey": user}
    if val is not None:
        out["value"] = val
    if at is not None:
        out["timestamp"] = at.isoformat()
    return out


def test_events_stored__exposures_and_track_events__counted_per_flag_and_variant(
    sdk_token: str, django_capture_on_commit_callbacks: Commit
) -> None:
    flag = "metrics.counted"
    before = {
        "on": value("flagapp_exposures_total", flag=flag, environment="production", variant="on"),
        "unattributed": value(
            "flagapp_events_unattributed_total", environment="production", event="error"
        ),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            Client(),
            sdk_token,
            [
                exposure(flag, "on", "u1"),
                exposure(flag, "on", "u3"),
                exposure(flag, "off", "u2"),
                track("error", "u1"),
                track("latency_ms", "u2", 120.0),
                track("error", "nobody"),
                {"kind": "tracking"},  # no name: rejected, counted
            ],
        )
    assert response.status_code == 202
    sel = {"flag": flag, "environment": "production"}
    assert value("flagapp_exposures_total", **sel, variant="on") - before["on"] == 2
    assert value("flagapp_exposures_total", **sel, variant="off") == 1
    assert value("flagapp_events_total", **sel, variant="on", event="error") == 1
    assert value("flagapp_events_total", **sel, variant="off", event="error") == 0
    assert value("flagapp_event_value_count", **sel, variant="off", event="latency_ms") == 1
    assert value("flagapp_event_value_sum", **sel, variant="off", event="latency_ms") == 120.0
    assert (
        value("flagapp_event_value_bucket", **sel, variant="off", event="latency_ms", le="100.0")
        == 0
    )
    assert (
        value("flagapp_event_value_bucket", **sel, variant="off", event="latency_ms", le="250.0")
        == 1
    )
    unattributed = value(
        "flagapp_events_unattributed_total", environment="production", event="error"
    )
    assert unattributed - before["unattributed"] == 1
    assert value("flagapp_events_rejected_total", environment="production") >= 1


def test_events_stored__replayed_batch__counted_once(
    sdk_token: str, django_capture_on_commit_callbacks: Commit
) -> None:
    flag = "metrics.replayed"
    batch = [exposure(flag, "on", f"u{i}") for i in range(3)]
    replays = value("flagapp_event_batches_total", environment="production", outcome="replayed")
    with django_capture_on_commit_callbacks(execute=True):
        first = post(Client(), sdk_token, batch, batch_id="b-replayed-1")
        again = post(Client(), sdk_token, batch, batch_id="b-replayed-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again["X-Flagapp-Batch-Replayed"] == "true"
    sel = {"flag": flag, "environment": "production", "variant": "on"}
    assert value("flagapp_exposures_total", **sel) == 3
    after = value("flagapp_event_batches_total", environment="production", outcome="replayed")
    assert after - replays == 1


def test_events_stored__transaction_rolled_back__nothing_counted(
    environments: dict[str, Any], django_capture_on_commit_callbacks: Commit
) -> None:
    flag = "metrics.rolled-back"
    batch = events_module.parse_batch(
        json.dumps({"events": [exposure(flag, "on", "u1")]}).encode(), max_events=10
    )
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        events_module.store("production", batch)
        raise RuntimeError("the caller's transaction fails after the store")
    sel = {"flag": flag, "environment": "production", "variant": "on"}
    assert value("flagapp_exposures_total", **sel) == 0


def test_events_stored__variant_changed__event_counts_for_variant_at_event_time(
    sdk_token: str, django_capture_on_commit_callbacks: Commit
) -> None:
    flag = "metrics.moved"
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        post(
            Client(),
            sdk_token,
            [
                exposure(flag, "off", "mover", t0),
                exposure(flag, "on", "mover", t0 + timedelta(minutes=10)),
            ],
        )
        post(
            Client(),
            sdk_token,
            [
                track("error", "mover", at=t0 + timedelta(minutes=5)),
                track("error", "mover", at=t0 + timedelta(minutes=15)),
                track("error", "mover", at=t0 - timedelta(days=2)),  # before any exposure
            ],
        )
    sel = {"flag": flag, "environment": "production", "event": "error"}
    assert value("flagapp_events_total", **sel, variant="off") == 1
    assert value("flagapp_events_total", **sel, variant="on") == 1


def test_events_stored__event_key_not_listed__not_attributed(
    sdk_token: str, settings: Any, django_capture_on_commit_callbacks: Commit
) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "METRICS_ATTRIBUTED_EVENTS": ["error"]}
    flag = "metrics.listed"
    with django_capture_on_commit_callbacks(execute=True):
        post(
            Client(),
            sdk_token,
            [exposure(flag, "on", "u1"), track("error", "u1"), track("clicked", "u1")],
        )
    sel = {"flag": flag, "environment": "production", "variant": "on"}
    assert value("flagapp_events_total", **sel, event="error") == 1
    assert value("flagapp_events_total", **sel, event="clicked") == 0


def test_django_side__evaluate_and_track__counted_once_when_flushed(
    db: Any, django_capture_on_commit_callbacks: Commit
) -> None:
    """This server's own exposures and ``flagapp.track()`` events land in the same pipeline
    (``write_events``), so the guardrail metrics count them too, once."""
    import flagapp
    from flagapp import evaluation, exposures
    from openfeature_provider.engine import parse_ruleset
    from tests.flagapp.eval_helpers import flag_doc, make_environment, ruleset_doc

    flag = "metrics.django-side"
    make_environment("production")
    doc = flag_doc()
    doc["metadata"][exposures.OBSERVED] = True  # a guarded rollout or an experiment reads it
    evaluation.install("production", parse_ruleset(ruleset_doc({flag: doc}, version=3)))
    try:
        for user in ("d1", "d2"):
            assert flagapp.evaluate(flag, False, {"targetingKey": user}).value is True
        flagapp.track({"targetingKey": "d1"}, "latency_ms", 40.0)
        with django_capture_on_commit_callbacks(execute=True):
            flagapp.flush_usage()
            flagapp.flush_usage()  # nothing left: nothing counted twice
    finally:
        evaluation.clear_cache()
        exposures.reset()
    sel = {"flag": flag, "environment": "production", "variant": "on"}
    assert value("flagapp_exposures_total", **sel) == 2
    assert value("flagapp_event_value_count", **sel, event="latency_ms") == 1
    assert value("flagapp_event_value_sum", **sel, event="latency_ms") == 40.0


# --- operational metrics --------------------------------------------------------------


def test_publish__new_version__duration_observed_and_version_scraped(
    make_flag: Any, envs: dict[str, Any], committed: Callable[[], Any]
) -> None:
    from flagapp import services

    flag = make_flag("metrics.published")
    before = value(
        "flagapp_publish_duration_seconds_count", environment="production", outcome="published"
    )
    with committed():
        services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="on")
    after = value(
        "flagapp_publish_duration_seconds_count", environment="production", outcome="published"
    )
    assert after - before == 1
    from flagapp.publishing import latest

    snapshot = latest("production")
    assert snapshot is not None
    body = Client().get("/metrics").content.decode()
    assert f'flagapp_snapshot_version{{environment="production"}} {snapshot.version}.0' in body


def test_rate_limit__refused__counted_per_scope(
    sdk_token: str, settings: Any, install_flags: Any
) -> None:
    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "RATE_LIMIT_STORE": "local",
        "RATE_LIMITS": {"sdk": {"rate": 0.001, "burst": 1}},
    }
    install_flags({})
    before = value("flagapp_rate_limited_requests_total", scope="sdk")
    statuses = [Client().get("/sdk/v1/ruleset", **bearer(sdk_token)).status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert value("flagapp_rate_limited_requests_total", scope="sdk") - before == 2


def test_stream__open_then_closed__gauge_up_then_down() -> None:
    from flagapp.sdk import views
    from flagapp.sdk.keys import KeyInfo

    seen: list[float] = []

    async def open_and_close() -> None:
        gen = views._events(KeyInfo(1, "pub", "metrics-stream-env"), None)
        seen.append(value("flagapp_sdk_streams_open", environment="metrics-stream-env"))
        first = await gen.__anext__()  # the retry line, before any database read
        assert first.startswith(b"retry:")
        seen.append(value("flagapp_sdk_streams_open", environment="metrics-stream-env"))
        await gen.aclose()
        seen.append(value("flagapp_sdk_streams_open", environment="metrics-stream-env"))

    asyncio.run(open_and_close())
    assert seen == [0, 1, 0]


# --- /metrics access -----------------------------------------------------------------


def test_metrics_view__loopback_by_default__exposition(environments: dict[str, Any]) -> None:
    response = Client().get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE flagapp_exposures_total counter" in response.content
    assert response["Cache-Control"] == "no-store"


def test_metrics_view__address_not_allowed__403_naming_the_setting(settings: Any) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "METRICS_ALLOW": ["10.0.0.0/8"]}
    response = Client().get("/metrics")
    assert response.status_code == 403
    assert b"127.0.0.1 is not in FLAGAPP['METRICS_ALLOW']" in response.content


def test_metrics_view__token__bearer_accepted_wrong_one_401(
    settings: Any, environments: dict[str, Any]
) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "METRICS_ALLOW": [], "METRICS_TOKEN": "s3cret-scrape"}
    client = Client()
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert b"s3cret" not in wrong.content
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 403


def test_metrics_view__forwarded_address_in_allowlist__allowed(
    settings: Any, environments: dict[str, Any]
) -> None:
    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "METRICS_ALLOW": ["10.1.0.0/16"],
        "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
    }
    ok = Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.1")
    assert ok.status_code == 200


def test_metrics_view__bad_allow_entry__error_names_the_entry(settings: Any) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "METRICS_ALLOW": ["127.0.0.1", "not-a-net"]}
    with pytest.raises(ImproperlyConfigured, match=r"METRICS_ALLOW'\]\[1\]: 'not-a-net'"):
        Client(raise_request_exception=True).get("/metrics")


def test_check_settings__bad_metrics_settings__e007_naming_each(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flagapp.checks import check_settings

    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "METRICS_ALLOW": ["10.0.0.0/8", "intranet"],
        "METRICS_VALUE_BUCKETS": [10, 5],
        "METRICS_TOKEN": "",
        "METRICS_ATTRIBUTED_EVENTS": "error",
    }
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    errors = [m.msg for m in check_settings() if m.id == "flagapp.E007"]
    assert len(errors) == 5, errors
    assert "FLAGAPP['METRICS_ALLOW'][1]: 'intranet' is not an IP address or network" in errors
    assert any("METRICS_VALUE_BUCKETS" in e for e in errors)
    assert any("METRICS_TOKEN" in e for e in errors)
    assert any("METRICS_ATTRIBUTED_EVENTS" in e for e in errors)
    assert any("PROMETHEUS_MULTIPROC_DIR" in e and "missing" in e for e in errors)


def test_check_settings__defaults__no_metrics_error() -> None:
    from flagapp.checks import check_settings

    assert [m for m in check_settings() if m.id == "flagapp.E007"] == []


def test_recording__metric_store_fails__request_path_not_broken(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def labels(self, *args: Any) -> Any:
            raise OSError("No such file or directory: PROMETHEUS_MULTIPROC_DIR")

    m = metrics._get()
    assert m is not None
    monkeypatch.setattr(m, "rate_limited", Broken())
    monkeypatch.setattr(metrics, "_warned_at", 0.0)
    with caplog.at_level("WARNING", logger="flagapp.metrics"):
        metrics.rate_limited("sdk")  # does not raise
    assert "rate_limited failed; not counted" in caplog.text


# --- several processes ------------------------------------------------------------------

CHILD = """
import os, sys
import django
django.setup()
from flagapp import metrics
metrics.rate_limited("sdk")
metrics.stream_opened("production")
print("recorded", os.getpid(), flush=True)
if sys.argv[1] == "stay":
    sys.stdin.readline()
"""


def test_scrape__multiprocess_dir__sums_processes_and_drops_dead_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environments: dict[str, Any]
) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(REPO),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    run = [sys.executable, "-c", CHILD]
    stays = subprocess.Popen(
        [*run, "stay"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert stays.stdout is not None
        assert stays.stdout.readline().startswith("recorded")
        gone = subprocess.run([*run, "exit"], env=env, capture_output=True, text=True, timeout=60)
        assert gone.returncode == 0, gone.stderr
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        body, _ = metrics.scrape()
        text = body.decode()
        assert 'flagapp_rate_limited_requests_total{scope="sdk"} 2.0' in text
        # the exited process's open stream is not counted: only the live one's
        assert 'flagapp_sdk_streams_open{environment="production"} 1.0' in text
    finally:
        assert stays.stdin is not None
        stays.stdin.close()
        stays.wait(10)
