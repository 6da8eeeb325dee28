"""GET /sdk/v1/stream under a real ASGI server (uvicorn on 127.0.0.1).

Changes are made through the services in the test thread; the announcement travels through
``snapshot_published`` -> the notifier -> the stream's event loop -> the socket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches

from flagapp import evaluation, services
from flagapp.sdk import keys
from openfeature_provider.transport import SseEvent, iter_sse

from .sdk_helpers import *  # noqa: F403 - fixtures
from .sdk_helpers import AsgiServer, flag_doc, ruleset_doc

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_heartbeat(settings: Any) -> None:
    settings.FLAGAPP = {"STREAM_HEARTBEAT_SECONDS": 0.2, "CACHE_CHECK_INTERVAL": 0.05}


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    """production with one published flag, and a key for it."""
    env = services.create_environment(
        key="production", name="Production", actor=None, reason="test"
    )
    owner = Group.objects.create(name="web")
    flag = services.create_flag(
        key="web.banner",
        name="Banner",
        owner=owner,
        actor=None,
        reason="test",
        expires_on=None,
        flag_type="ops",
    )
    _, token = keys.create_sdk_key(env, name="stream")
    return {"env": env, "flag": flag, "token": token}


class Reader:
    """Reads SSE events and comments from one open stream; every wait has a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.comments: list[str] = []
        self.lines: Iterator[str] = response.iter_lines()
        self.deadline = time.monotonic() + 10
        self._events: Iterator[SseEvent] = iter_sse(self._bounded(), self.comments.append)

    def _bounded(self) -> Iterator[str]:
        for line in self.lines:
            if time.monotonic() > self.deadline:
                raise AssertionError("no expected event before the deadline")
            yield line

    def next_snapshot(self, within: float = 5.0) -> dict[str, Any]:
        self.deadline = time.monotonic() + within
        for event in self._events:
            if event.event == "snapshot":
                data: dict[str, Any] = json.loads(event.data)
                return data
        raise AssertionError("stream ended")


def _open(server: AsgiServer, token: str | None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.stream(
        "GET",
        f"{server.url}/sdk/v1/stream",
        headers=headers,
        params=params,
        timeout=httpx.Timeout(5.0),
    )


def _version() -> int:
    rs = evaluation.get_ruleset("production")
    return rs.version if rs is not None else 0


def test_stream__connect__sse_headers_retry_hint_and_current_version(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    with _open(asgi_server, world["token"]) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "no-cache" in response.headers["Cache-Control"]
        reader = Reader(response)
        assert next(reader.lines).startswith("retry: ")
        announced = reader.next_snapshot()
    assert announced["environment"] == "production"
    assert announced["version"] == _version() >= 1
    assert announced["etag"].startswith("sha256:")


def test_stream__change_through_services__announced_by_the_notifier(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    # Heartbeats far apart: only the notifier can deliver the announcement in time.
    settings.FLAGAPP = {"STREAM_HEARTBEAT_SECONDS": 60}
    with _open(asgi_server, world["token"]) as response:
        reader = Reader(response)
        before = reader.next_snapshot()
        services.set_flag_enabled(world["flag"], world["env"], True, actor=None, reason="go")
        after = reader.next_snapshot()
    assert after["version"] == before["version"] + 1
    assert after["etag"] != before["etag"]


def test_stream__idle__heartbeat_comments(asgi_server: AsgiServer, world: dict[str, Any]) -> None:
    with _open(asgi_server, world["token"]) as response:
        reader = Reader(response)
        reader.next_snapshot()
        deadline = time.monotonic() + 3
        while "heartbeat" not in reader.comments and time.monotonic() < deadline:
            line = next(reader.lines)
            if line.startswith(":"):
                reader.comments.append(line[1:].strip())
    assert "heartbeat" in reader.comments


def test_stream__announcement_lost__version_caught_at_heartbeat(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    with _open(asgi_server, world["token"]) as response:
        reader = Reader(response)
        current = reader.next_snapshot()["version"]
        # Another process publishes (shared cache: document, then version pointer) and its
        # announcement is lost: the stream notices at its next heartbeat check.
        newer = current + 5
        doc = ruleset_doc({"web.banner": flag_doc()}, version=newer)
        cache = caches["default"]
        cache.set(evaluation.document_key("production", newer), json.dumps(doc), None)
        cache.set(evaluation.version_key("production"), newer, None)
        assert reader.next_snapshot()["version"] == newer


@pytest.mark.parametrize("case", ["none", "unknown", "revoked"])
def test_stream__bad_key__refused(
    asgi_server: AsgiServer, world: dict[str, Any], case: str
) -> None:
    token = {"none": None, "unknown": "fa_production_" + "x" * 40, "revoked": world["token"]}[case]
    if case == "revoked":
        keys.revoke_sdk_key(keys.public_id_of(world["token"]))
    with _open(asgi_server, token) as response:
        assert response.status_code == 401


def test_stream__another_environments_key__403(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    staging = services.create_environment(key="staging", name="Staging", actor=None, reason="test")
    _, token = keys.create_sdk_key(staging)
    with _open(asgi_server, token, environment="production") as response:
        assert response.status_code == 403


def test_stream__client_disconnects__subscription_released(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    from flagapp.sdk import notifier

    with _open(asgi_server, world["token"]) as response:
        Reader(response).next_snapshot()
        assert notifier.subscriber_count() == 1
    deadline = time.monotonic() + 5
    while notifier.subscriber_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert notifier.subscriber_count() == 0


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.mark.redis
def test_stream__redis_notifier__announcement_from_another_process_delivered(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    if not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    from flagapp.sdk import notifier

    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "NOTIFIER": "redis",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "STREAM_HEARTBEAT_SECONDS": 30,
    }
    try:
        with _open(asgi_server, world["token"]) as response:
            reader = Reader(response)
            current = reader.next_snapshot()["version"]
            client = redis.Redis(host="127.0.0.1", port=6379)
            # Wait until this process's listener has subscribed, then speak as another one.
            deadline = time.monotonic() + 5
            while client.pubsub_numsub(notifier.CHANNEL)[0][1] < 1:
                assert time.monotonic() < deadline, "listener never subscribed"
                time.sleep(0.05)
            client.publish(
                notifier.CHANNEL,
                json.dumps(
                    {
                        "type": "snapshot",
                        "origin": "another-process",
                        "environment": "production",
                        "version": current + 1,
                        "etag": "sha256:elsewhere",
                    }
                ),
            )
            announced = reader.next_snapshot()
        assert (announced["version"], announced["etag"]) == (current + 1, "sha256:elsewhere")
    finally:
        notifier.stop_listener()


@pytest.mark.redis
def test_notifier__redis_revocation_from_another_process__cached_key_dropped(
    world: dict[str, Any], settings: Any
) -> None:
    if not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    from flagapp.models import SdkKey
    from flagapp.sdk import notifier

    settings.FLAGAPP = {"NOTIFIER": "redis", "SDK_KEY_CACHE_SECONDS": 3600}
    try:
        keys.authenticate_token(world["token"])  # cached for an hour
        notifier.ensure_listener()
        client = redis.Redis(host="127.0.0.1", port=6379)
        deadline = time.monotonic() + 5
        while client.pubsub_numsub(notifier.CHANNEL)[0][1] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        public_id = keys.public_id_of(world["token"])
        SdkKey.objects.filter(public_id=public_id).update(revoked_at="2026-01-01T00:00:00Z")
        client.publish(
            notifier.CHANNEL,
            json.dumps(
                {"type": "sdk_key_revoked", "origin": "another-process", "public_id": public_id}
            ),
        )
        deadline = time.monotonic() + 5
        refused = False
        while not refused and time.monotonic() < deadline:
            try:
                keys.authenticate_token(world["token"])
                time.sleep(0.05)
            except keys.AuthFailure:
                refused = True
        assert refused
    finally:
        notifier.stop_listener()


def test_asgi_fast_path__sdk_and_other_paths__each_served_by_its_handler(
    asgi_server: AsgiServer, world: dict[str, Any], install_flags: Any
) -> None:
    headers = {"Authorization": f"Bearer {world['token']}"}
    ofrep = httpx.post(
        f"{asgi_server.url}/ofrep/v1/evaluate/flags/web.banner", headers=headers, json={}
    )
    assert ofrep.status_code == 200
    assert ofrep.json()["reason"] == "DISABLED"
    # The project's own pages still go through its middleware (the admin redirects to login).
    admin = httpx.get(f"{asgi_server.url}/admin/", follow_redirects=False)
    assert admin.status_code == 302
    assert "X-Frame-Options" in admin.headers  # set by the project's middleware


def test_asgi_fast_path__host_not_allowed__400(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["flags.example.com"]
    response = httpx.get(
        f"{asgi_server.url}/sdk/v1/ruleset",
        headers={"Authorization": f"Bearer {world['token']}", "Host": "evil.example.net"},
    )
    assert response.status_code == 400


def test_asgi_fast_path__ofrep_evaluations__statistics_flushed_periodically(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    from flagapp.models import FlagEvaluationStat

    settings.FLAGAPP = {"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 0}
    headers = {"Authorization": f"Bearer {world['token']}"}
    url = f"{asgi_server.url}/ofrep/v1/evaluate/flags/web.banner"
    deadline = time.monotonic() + 8
    stat = None
    # No request_finished per request on the fast path: it is sent at most once a second,
    # and that is when the buffered statistics reach the database.
    while stat is None and time.monotonic() < deadline:
        assert httpx.post(url, headers=headers, json={"context": {"targetingKey": "u1"}}).is_success
        time.sleep(0.2)
        stat = FlagEvaluationStat.objects.filter(flag_key="web.banner").first()
    assert stat is not None and stat.count >= 1


def test_stream__key_revoked_while_open__stream_ends(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    with _open(asgi_server, world["token"]) as response:
        reader = Reader(response)
        reader.next_snapshot()
        keys.revoke_sdk_key(keys.public_id_of(world["token"]))
        ended = False
        deadline = time.monotonic() + 5
        try:
            for _line in reader.lines:
                if time.monotonic() > deadline:
                    break
        except httpx.HTTPError:
            pass
        else:
            ended = time.monotonic() <= deadline
    assert ended, "the stream of a revoked key stayed open"
