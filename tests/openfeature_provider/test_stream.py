"""SSE streaming against the local server: announcements, drops, fall-back to polling."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode

from openfeature_provider import FlagappProvider
from openfeature_provider.engine import parse_ruleset
from openfeature_provider.lkg import LastKnownGood
from openfeature_provider.remote import StreamingSource
from tests.openfeature_provider.conftest import EventRecorder, make_doc, wait_until
from tests.openfeature_provider.flag_server import VALID_KEY, FlagServer


def _provider(server: FlagServer, name: str, **kwargs: object) -> FlagappProvider:
    options: dict[str, object] = {
        "stream": True,
        "poll_interval": 60.0,  # so any prompt update must have come through the stream
        "init_timeout": 2.0,
        "read_timeout": 0.5,
        "connect_timeout": 0.5,
        "backoff_base": 0.05,
        "backoff_max": 0.2,
        "stream_read_timeout": 1.0,
        "name": name,
    }
    options.update(kwargs)
    return FlagappProvider(url=server.url, sdk_key=VALID_KEY, **options)  # type: ignore[arg-type]


def _theme_doc(version: int, theme: str) -> dict[str, object]:
    doc = make_doc(version)
    doc["flags"]["ui.theme"]["fallthrough"] = {"variant": theme}
    return doc


def test_stream__announcement__fetches_and_emits_changed_keys(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name)
    api.set_provider_and_wait(provider)
    assert wait_until(lambda: flag_server.open_streams == 1)
    stream_req = next(r for r in flag_server.requests if r.path == "/sdk/v1/stream")
    assert stream_req.headers["Accept"] == "text/event-stream"
    assert stream_req.headers["Authorization"] == f"Bearer {VALID_KEY}"
    flag_server.set_ruleset(_theme_doc(2, "light"))
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]
    assert api.get_client().get_string_value("ui.theme", "x") == "light"
    # one fetch at connect (with no etag yet) and one per announcement of a new version
    assert flag_server.count("/sdk/v1/ruleset") == 2
    assert recorder.kinds().count("READY") == 1


def test_stream__heartbeats__keep_provider_fresh(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name, stale_after=0.3)
    api.set_provider_and_wait(provider)
    time.sleep(0.8)  # several heartbeats (every 0.2s), no new version
    assert recorder.kinds() == ["READY"]
    assert flag_server.count("/sdk/v1/ruleset") == 1


def test_stream__dropped_and_resumed__change_while_away_is_applied(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name)
    api.set_provider_and_wait(provider)
    source = provider.source
    assert isinstance(source, StreamingSource)
    assert wait_until(lambda: flag_server.open_streams == 1)
    flag_server.set_ruleset(_theme_doc(2, "light"), announce=False)  # nobody hears this
    flag_server.drop_streams()
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]
    assert source.connections >= 2
    reconnect = [r for r in flag_server.requests if r.path == "/sdk/v1/stream"][-1]
    assert reconnect.headers.get("Last-Event-ID") == "1"
    assert recorder.of(ProviderEvent.PROVIDER_ERROR) == []
    assert recorder.of(ProviderEvent.PROVIDER_STALE) == []


def test_stream__server_dies__stale_then_ready_after_restart(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name, stale_after=0.3, stream_fallback_after=100)
    api.set_provider_and_wait(provider)
    flag_server.stop()
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)) == 1
    flag_server.set_ruleset(_theme_doc(3, "light"), announce=False)
    flag_server.start()
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]


def test_stream__no_stream_endpoint__falls_back_to_polling(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    flag_server.stream_status = 404
    provider = _provider(flag_server, provider_name, poll_interval=0.1)
    api.set_provider_and_wait(provider)
    source = provider.source
    assert isinstance(source, StreamingSource)
    assert wait_until(lambda: source.mode == "poll")
    flag_server.set_ruleset(_theme_doc(2, "light"))
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]
    assert flag_server.count("/sdk/v1/stream") == 1  # not retried within stream_retry_interval
    assert recorder.kinds() == ["READY", "CONFIGURATION_CHANGED"]  # no error for a 404


def test_stream__no_stream_endpoint_at_start__polls_instead_of_lkg(
    flag_server: FlagServer, provider_name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    LastKnownGood(cache, server=flag_server.url, sdk_key=VALID_KEY).save(
        parse_ruleset({**make_doc(1), "etag": "older"})
    )
    flag_server.stream_status = 404
    provider = _provider(flag_server, provider_name, poll_interval=0.1, cache_path=cache)
    api.set_provider_and_wait(provider)
    assert provider.served_from == "source"


def test_stream__repeated_500s__falls_back_then_returns_to_stream(
    flag_server: FlagServer, provider_name: str
) -> None:
    flag_server.stream_status = 500
    provider = _provider(
        flag_server,
        provider_name,
        poll_interval=0.05,
        stream_fallback_after=2,
        stream_retry_interval=0.5,
    )
    api.set_provider_and_wait(provider)
    source = provider.source
    assert isinstance(source, StreamingSource)
    assert wait_until(lambda: source.mode == "poll")
    assert flag_server.count("/sdk/v1/stream") == 2
    flag_server.stream_status = None
    assert wait_until(lambda: flag_server.open_streams == 1, timeout=5)
    assert source.mode == "stream"


def test_stream__shutdown__stops_thread_promptly(
    flag_server: FlagServer, provider_name: str
) -> None:
    flag_server.heartbeat = 30.0  # nothing arrives on the stream: only the interrupt wakes it
    provider = _provider(flag_server, provider_name, stream_read_timeout=30.0)
    api.set_provider_and_wait(provider)
    assert wait_until(lambda: flag_server.open_streams == 1)
    started = time.monotonic()
    provider.shutdown()
    provider.shutdown()  # idempotent
    assert time.monotonic() - started < 5  # the blocked read was woken, not timed out
    assert not [t for t in threading.enumerate() if t.name.startswith("flagapp-stream")]


def test_source_bug__thread_crash__provider_error_not_fatal(
    flag_server: FlagServer,
    provider_name: str,
    recorder: EventRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = _provider(flag_server, provider_name)
    api.set_provider_and_wait(provider)
    source = provider.source
    assert isinstance(source, StreamingSource)

    def bug(_data: str) -> bool:
        raise KeyError("oops")

    monkeypatch.setattr(source, "_on_announcement", bug)
    flag_server.set_ruleset(_theme_doc(2, "light"))
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and "crashed" in (errors[0].message or "")
    assert errors[0].error_code != ErrorCode.PROVIDER_FATAL
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"  # still serving


def test_stream__key_revoked__held_snapshot_served_and_stream_resumes(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """A 401 on reconnect is not fatal while a snapshot is held (issue 11 finding 4)."""
    provider = _provider(flag_server, provider_name)
    api.set_provider_and_wait(provider)
    assert wait_until(lambda: flag_server.open_streams == 1)
    flag_server.keys.clear()
    flag_server.drop_streams()
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and errors[0].error_code == ErrorCode.GENERAL
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"
    flag_server.keys.add(VALID_KEY)
    assert wait_until(lambda: flag_server.open_streams == 1)
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    flag_server.set_ruleset(_theme_doc(2, "light"))
    assert wait_until(lambda: api.get_client().get_string_value("ui.theme", "x") == "light")


def test_stream__outage_past_fallback__stream_retried_with_capped_backoff(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """After a short outage the stream is back within one backoff step (issue 11 finding 5).

    Before, a few failed reconnects meant ``stream_retry_interval`` (5 minutes) of polling:
    change latency went from a fraction of a second to the poll interval, silently.
    """
    provider = _provider(
        flag_server, provider_name, stream_fallback_after=2, backoff_max=0.4, stale_after=3600
    )
    api.set_provider_and_wait(provider)
    source = provider.source
    assert isinstance(source, StreamingSource)
    assert wait_until(lambda: flag_server.open_streams == 1)
    flag_server.stop()
    assert wait_until(lambda: source.mode == "poll")  # fell back: the stream kept failing
    time.sleep(1.0)  # the outage goes on past several retries
    flag_server.start()
    assert wait_until(lambda: flag_server.open_streams == 1, timeout=5)
    assert source.mode == "stream"
    flag_server.set_ruleset(_theme_doc(2, "light"))  # poll_interval is 60 s: only the stream
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]


def test_stream__retry_backoff__capped_at_30_seconds() -> None:
    source = StreamingSource("http://127.0.0.1:9", VALID_KEY, backoff_max=600.0)
    try:
        assert source.stream_backoff.maximum == 30.0
        assert max(source.stream_backoff.next() for _ in range(40)) <= 30.0
    finally:
        source.stop()
