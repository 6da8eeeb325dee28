"""Usage counts from a non-Django service (issue 14 part 2), against a real server.

``FlagappProvider`` counts evaluations per flag and variant and sends them by default, with
no context, to ``POST /sdk/v1/events`` of a real HTTP server (pytest-django's live server):
after N evaluations through the OpenFeature client the server's stale-flag report no longer
lists the flag and its count is exactly N, also when the answer to a stored batch is lost
and the provider retries it (the batch id makes the server store it once).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext

from flagapp import services
from flagapp.governance.stale import stale_report
from flagapp.models import ContextSample, Flag, FlagEvaluationStat, SdkEvent
from flagapp.services import sdk_keys
from openfeature_provider import FlagappProvider

pytestmark = pytest.mark.django_db(transaction=True)

FLAG = "billing.invoice-v2"
N = 37


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    """A flag created 60 days ago and never evaluated (stale), switched on, and an SDK key."""
    env = services.create_environment(
        key="production", name="Production", actor=None, reason="test"
    )
    flag = services.create_flag(
        key=FLAG,
        name="Invoices v2",
        owner=Group.objects.create(name="billing"),
        actor=None,
        reason="test",
        flag_type="ops",
    )
    services.update_flag_state(
        flag, env, actor=None, reason="launch", enabled=True, fallthrough={"variant": "on"}
    )
    Flag.objects.filter(pk=flag.pk).update(created_at=timezone.now() - dt.timedelta(days=60))
    _, token = sdk_keys.create_sdk_key(env, name="billing-service", actor=None, reason="tests")
    return {"env": env, "flag": flag, "token": token}


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[FlagappProvider, OpenFeatureClient]]]:
    providers: list[FlagappProvider] = []

    def make(url: str, token: str, **options: Any) -> tuple[FlagappProvider, OpenFeatureClient]:
        provider = FlagappProvider(url, token, init_timeout=5, poll_interval=30, **options)
        providers.append(provider)
        domain = f"usage-{uuid.uuid4().hex}"
        api.set_provider_and_wait(provider, domain)
        return provider, api.get_client(domain)

    yield make
    for provider in providers:
        provider.shutdown()
    api.clear_providers()


def _count() -> int:
    return sum(FlagEvaluationStat.objects.filter(flag_key=FLAG).values_list("count", flat=True))


def _wait_for(predicate: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _evaluate(client: OpenFeatureClient, n: int) -> None:
    for i in range(n):
        ctx = EvaluationContext(f"user-{i}", {"email": f"user-{i}@example.com"})
        assert client.get_boolean_value(FLAG, False, ctx) is True


def test_provider_usage__n_evaluations__counted_once_and_flag_no_longer_stale(
    live_server: Any,
    world: dict[str, Any],
    connect: Callable[..., tuple[FlagappProvider, OpenFeatureClient]],
) -> None:
    assert FLAG in stale_report().not_evaluated  # never evaluated anywhere
    provider, client = connect(
        live_server.url, world["token"], usage_interval=0.2, event_flush_interval=0.1
    )
    _evaluate(client, N)
    assert _wait_for(lambda: _count() >= N)
    time.sleep(0.6)  # three more usage intervals: nothing more may arrive
    assert _count() == N
    report = stale_report()
    assert FLAG not in report.not_evaluated
    stat = FlagEvaluationStat.objects.get(flag_key=FLAG)
    assert stat.last_evaluated_at is not None
    assert timezone.now() - stat.last_evaluated_at < dt.timedelta(minutes=1)
    # Counts only: no exposure rows, no stored contexts (nothing that names a user).
    assert SdkEvent.objects.count() == 0
    assert ContextSample.objects.count() == 0
    stats = provider.tracking_stats()
    assert (stats["usage_evaluations"], stats["sent"]) == (N, stats["usage_events"])


class _LosingProxy:
    """An HTTP proxy on loopback in front of the live server that forwards everything, but
    answers 503 to the first ``POST /sdk/v1/events`` after the server has stored it: the
    provider never hears that its batch arrived, and sends it again."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.event_posts: list[str | None] = []  # X-Flagapp-Batch-Id of each events POST
        self.lost = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
                }
                headers["Accept-Encoding"] = "identity"
                reply = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    content=body,
                    timeout=10,
                )
                lose = False
                if self.command == "POST" and self.path.startswith("/sdk/v1/events"):
                    with proxy._lock:
                        proxy.event_posts.append(self.headers.get("X-Flagapp-Batch-Id"))
                        lose = proxy.lost == 0 and reply.status_code == 202
                        proxy.lost += lose
                if lose:  # stored upstream, but the answer is lost on the way back
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = _forward
            do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _LosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_provider_usage__answer_lost_and_batch_retried__counted_exactly_once(
    live_server: Any,
    world: dict[str, Any],
    connect: Callable[..., tuple[FlagappProvider, OpenFeatureClient]],
) -> None:
    with _LosingProxy(live_server.url) as proxy:
        provider, client = connect(
            proxy.url,
            world["token"],
            usage_interval=0.2,
            event_flush_interval=0.1,
            event_retry_base=0.05,
        )
        _evaluate(client, N)
        assert _wait_for(lambda: provider.tracking_stats()["sent"] >= 1)
        assert proxy.lost == 1
        # The lost batch went twice with the same id; the server stored it once.
        assert len(proxy.event_posts) >= 2 and proxy.event_posts[0] == proxy.event_posts[1]
        assert provider.tracking_stats()["failed_posts"] >= 1
        time.sleep(0.6)
        assert _count() == N
    assert FLAG not in stale_report().not_evaluated
