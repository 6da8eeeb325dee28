"""OFREP bulk ``eventStreams`` (ADR-0008, the protocol's February 2026 addition; issue 15
part 2): the bulk answer names an SSE endpoint; a change made through the services reaches
it as a ``refetchEvaluation`` message (from the notifier that feeds ``/sdk/v1/stream``) and the
triggered re-fetch (``flagConfigEtag``) serves the change. Every answer and every event is
validated against the vendored openapi.yaml (``eventStream``, ``sseEvent``,
``sseEventData``). Real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from django.contrib.auth.models import Group

from flagapp import evaluation, services
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from openfeature_provider.transport import SseEvent, iter_sse
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import AsgiServer
from tests.interop.ofrep_openapi import assert_valid, validator

pytestmark = pytest.mark.django_db(transaction=True)

BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture(autouse=True)
def fast_heartbeat(settings: Any) -> None:
    settings.FLAGAPP = {"STREAM_HEARTBEAT_SECONDS": 0.2, "CACHE_CHECK_INTERVAL": 0.05}


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    env = services.create_environment(key="production", name="P", actor=None, reason="test")
    owner = Group.objects.create(name="web")
    flag = services.create_flag(
        key="web.banner", name="Banner", owner=owner, actor=None, reason="test",
        expires_on=None, flag_type="ops",
    )  # fmt: skip
    _, token = sdk_keys.create_sdk_key(
        env, name="browser", scope="client", actor=None, reason="tests"
    )
    return {"env": env, "flag": flag, "token": token}


def _bulk(server: AsgiServer, token: str, **params: str) -> httpx.Response:
    response = httpx.post(
        f"{server.url}{BULK}",
        json={"context": {"targetingKey": "u1"}},
        headers={"Authorization": f"Bearer {token}"},
        params=params,
        timeout=5,
    )
    if response.status_code == 200:
        assert_valid(response.json(), 200, bulk=True)
    return response


def _stream_url(server: AsgiServer, body: dict[str, Any]) -> str:
    (stream,) = body["eventStreams"]
    validator("eventStream").validate(stream)
    assert stream["type"] == "sse"
    # No origin: the client joins requestUri to the OFREP base URL it was configured with.
    assert set(stream) == {"type", "endpoint"} and set(stream["endpoint"]) == {"requestUri"}
    return urljoin(server.url, stream["endpoint"]["requestUri"])


class Events:
    def __init__(self, response: httpx.Response) -> None:
        self.deadline = time.monotonic() + 10
        self.comments: list[str] = []
        self._events: Iterator[SseEvent] = iter_sse(self._bounded(response), self.comments.append)

    def _bounded(self, response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            if time.monotonic() > self.deadline:
                raise AssertionError("no expected event before the deadline")
            yield line

    def next(self, within: float = 5.0) -> tuple[SseEvent, dict[str, Any]]:
        self.deadline = time.monotonic() + within
        for event in self._events:
            if not event.data:
                assert event.retry is not None  # the reconnect hint alone
                validator("sseEvent").validate({"data": "", "retry": event.retry})
                continue
            envelope = {"data": event.data, "event": event.event, "id": event.id}
            validator("sseEvent").validate(envelope)
            data: dict[str, Any] = json.loads(event.data)
            validator("sseEventData").validate(data)
            return event, data
        raise AssertionError("stream ended")


def _value(body: dict[str, Any]) -> Any:
    return next(
        f.get("value", "caller's default") for f in body["flags"] if f["key"] == "web.banner"
    )


def test_ofrep_event_stream__change_through_services__refetch_event_then_fresh_bulk(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "STREAM_HEARTBEAT_SECONDS": 60}  # notifier only
    first = _bulk(asgi_server, world["token"])
    assert _value(first.json()) == "caller's default"  # disabled: no value
    url = _stream_url(asgi_server, first.json())
    with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=10)) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = Events(response)
        services.set_flag_enabled(world["flag"], world["env"], True, actor=None, reason="go")
        event, data = events.next()
    rs = evaluation.get_ruleset("production")
    assert rs is not None
    assert (event.event, event.id) == ("message", str(rs.version))
    assert data == {"type": "refetchEvaluation", "etag": rs.etag}
    again = _bulk(
        asgi_server, world["token"], flagConfigEtag=data["etag"]
    )  # what the web provider sends, with If-None-Match of the first answer:
    assert _value(again.json()) is False  # enabled: the fallthrough variant "off"
    assert again.json()["eventStreams"] == first.json()["eventStreams"]  # same connection


def test_ofrep_event_stream__last_event_id_behind__missed_change_replayed(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    url = _stream_url(asgi_server, _bulk(asgi_server, world["token"]).json())
    rs = evaluation.get_ruleset("production")
    assert rs is not None
    headers = {"Last-Event-ID": str(rs.version - 1)}
    with httpx.stream("GET", url, headers=headers, timeout=5) as response:
        event, data = Events(response).next()
    assert event.id == str(rs.version) and data["type"] == "refetchEvaluation"


def test_ofrep_event_stream__key_revoked__stream_ends_and_reconnect_401(
    asgi_server: AsgiServer, world: dict[str, Any]
) -> None:
    url = _stream_url(asgi_server, _bulk(asgi_server, world["token"]).json())
    with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=10)) as response:
        sdk_keys.revoke_sdk_key(keys.public_id_of(world["token"]), actor=None, reason="tests")
        lines = list(response.iter_lines())  # ends at the next heartbeat's key check
    assert lines[0].startswith("retry: ")
    with httpx.stream("GET", url, timeout=5) as response:
        assert response.status_code == 401


@pytest.mark.parametrize("channel", ["", "forged", "WyJ4IiwieSJd:badsignature"])
def test_ofrep_event_stream__unsigned_channel__401(
    asgi_server: AsgiServer, world: dict[str, Any], channel: str
) -> None:
    response = httpx.get(
        f"{asgi_server.url}/ofrep/v1/event-stream", params={"channel": channel}, timeout=5
    )
    assert response.status_code == 401
    assert "eventStreams" in response.json()["errorDetails"]


def test_ofrep_bulk__event_streams_off__not_advertised(
    asgi_server: AsgiServer, world: dict[str, Any], settings: Any
) -> None:
    settings.FLAGAPP = {**settings.FLAGAPP, "OFREP_EVENT_STREAMS": False}
    assert "eventStreams" not in _bulk(asgi_server, world["token"]).json()


def test_ofrep_bulk__flag_config_etag_newer_than_process__rechecked_not_304(
    world: dict[str, Any], settings: Any
) -> None:
    """A process that has not heard of the announced snapshot (its notifier is late) must
    not answer the triggered re-fetch with 304 from its old copy."""
    from django.test import Client

    settings.FLAGAPP = {"CACHE_CHECK_INTERVAL": 3600, "RULESET_RECHECK_SECONDS": 0}
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}"}
    body = json.dumps({"context": {"targetingKey": "u1"}})
    old = evaluation.get_ruleset("production")
    first = client.post(BULK, body, "application/json", **auth)
    services.set_flag_enabled(world["flag"], world["env"], True, actor=None, reason="go")
    new = evaluation.get_ruleset("production")
    assert old is not None and new is not None and new.version > old.version
    evaluation.install("production", old)  # this process missed the announcement
    stale = client.post(BULK, body, "application/json", HTTP_IF_NONE_MATCH=first["ETag"], **auth)
    assert stale.status_code == 304  # without the event's etag: nothing tells it
    triggered = client.post(
        f"{BULK}?flagConfigEtag={new.etag}", body, "application/json",
        HTTP_IF_NONE_MATCH=first["ETag"], **auth,
    )  # fmt: skip
    assert triggered.status_code == 200
    assert _value(triggered.json()) is False
