"""The provider against a real local HTTP server speaking docs/protocol.md (polling)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode, ProviderFatalError, ProviderNotReadyError
from openfeature.provider import ProviderStatus

from openfeature_provider import FlagappProvider
from openfeature_provider.lkg import LastKnownGood
from tests.openfeature_provider.conftest import EventRecorder, make_doc, wait_until
from tests.openfeature_provider.flag_server import FORBIDDEN_KEY, VALID_KEY, FlagServer, Scripted

PRO = EvaluationContext("user-42", {"plan": "pro"})


def _provider(server: FlagServer, name: str, **kwargs: object) -> FlagappProvider:
    options: dict[str, object] = {
        "poll_interval": 0.1,
        "init_timeout": 2.0,
        "read_timeout": 0.5,
        "connect_timeout": 0.5,
        "backoff_base": 0.05,
        "backoff_max": 0.1,
        "name": name,
    }
    options.update(kwargs)
    return FlagappProvider(url=server.url, sdk_key=VALID_KEY, **options)  # type: ignore[arg-type]


def test_poll__server_up__serves_snapshot_with_bearer_key(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    details = api.get_client().get_boolean_details("checkout.new-flow", False, PRO)
    assert (details.value, details.variant, details.reason) == (True, "on", "TARGETING_MATCH")
    first = next(r for r in flag_server.requests if r.path == "/sdk/v1/ruleset")
    assert first.headers["Authorization"] == f"Bearer {VALID_KEY}"
    assert "If-None-Match" not in first.headers
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 1)) == 1


def test_poll__unchanged__sends_if_none_match_and_gets_304(
    flag_server: FlagServer, provider_name: str
) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    assert wait_until(lambda: flag_server.count("/sdk/v1/ruleset") >= 3)
    later = [r for r in flag_server.requests if r.path == "/sdk/v1/ruleset"][1:]
    assert all(r.headers.get("If-None-Match") == '"sha256:v1"' for r in later)


def test_poll__new_version__configuration_changed_once_with_exact_keys(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    api.set_provider_and_wait(_provider(flag_server, provider_name, cache_path=cache))
    doc = make_doc(2)
    doc["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    flag_server.set_ruleset(doc)
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert len(changed) == 1
    assert changed[0].flags_changed == ["ui.theme"]
    assert api.get_client().get_string_value("ui.theme", "x") == "light"
    assert wait_until(lambda: json.loads(cache.read_text())["version"] == 2)
    assert recorder.kinds().count("READY") == 1


def test_poll__gzip__accepted(flag_server: FlagServer, provider_name: str) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    first = next(r for r in flag_server.requests if r.path == "/sdk/v1/ruleset")
    assert "gzip" in first.headers.get("Accept-Encoding", "")
    assert api.get_client().get_integer_value("api.page-size", 0) == 100


def test_init__server_down_no_lkg__provider_not_ready(provider_name: str, tmp_path: Path) -> None:
    server = FlagServer(make_doc()).start()
    server.stop()  # the port is now closed: connection refused
    provider = _provider(server, provider_name, init_timeout=0.5, cache_path=tmp_path / "x.json")
    with pytest.raises(ProviderNotReadyError):
        api.set_provider_and_wait(provider)
    details = api.get_client().get_boolean_details("checkout.new-flow", False, PRO)
    assert details.value is False
    assert details.error_code == ErrorCode.PROVIDER_NOT_READY


def test_init__server_down_with_lkg__serves_lkg_then_stale_then_ready_on_recovery(
    provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc(5)).start()
    _lkg(cache, server).save(_parsed(make_doc(5)))
    port = server.port
    server.stop()
    provider = _provider(server, provider_name, cache_path=cache, stale_after=0.0)
    api.set_provider_and_wait(provider)  # does not raise: LKG served
    assert provider.served_from == "last-known-good"
    assert api.get_client().get_boolean_value("checkout.new-flow", False, PRO) is True
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1 and "last-known-good" in (stale[0].message or "")
    assert api.get_client().get_provider_status() == ProviderStatus.STALE
    # the server comes back with the same version: READY again, no configuration change
    server = FlagServer(make_doc(5), port=port).start()
    try:
        ready = recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)
        assert len(ready) == 2  # the SDK's after initialize, ours on recovery
        assert recorder.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED) == []
        assert api.get_client().get_provider_status() == ProviderStatus.READY
    finally:
        server.stop()


def test_init__server_down_with_fresh_lkg__ready_without_stale(
    provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc(5)).start()
    _lkg(cache, server).save(_parsed(make_doc(5)))
    server.stop()
    api.set_provider_and_wait(_provider(server, provider_name, cache_path=cache, stale_after=60))
    time.sleep(0.4)
    assert recorder.kinds() == ["READY"]


def test_init__401__provider_fatal(flag_server: FlagServer, provider_name: str) -> None:
    provider = FlagappProvider(url=flag_server.url, sdk_key="wrong", name=provider_name)
    with pytest.raises(ProviderFatalError):
        api.set_provider_and_wait(provider)
    assert api.get_client().get_provider_status() == ProviderStatus.FATAL
    details = api.get_client().get_boolean_details("checkout.new-flow", False)
    assert details.error_code == ErrorCode.PROVIDER_FATAL


def test_init__403__provider_fatal(flag_server: FlagServer, provider_name: str) -> None:
    provider = FlagappProvider(url=flag_server.url, sdk_key=FORBIDDEN_KEY, name=provider_name)
    with pytest.raises(ProviderFatalError):
        api.set_provider_and_wait(provider)


def test_init__401_with_lkg__lkg_served_error_and_key_fixed_later_picked_up(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    """A snapshot on disk beats a rejected key: serve it, say ERROR, keep asking (finding 4)."""
    cache = tmp_path / "lkg.json"
    _lkg(cache, flag_server).save(_parsed(make_doc(1)))
    flag_server.keys.clear()
    provider = _provider(flag_server, provider_name, cache_path=cache, stale_after=3600)
    api.set_provider_and_wait(provider)  # no ProviderFatalError
    assert provider.served_from == "last-known-good"
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and errors[0].error_code == ErrorCode.GENERAL
    assert "401" in (errors[0].message or "")
    assert api.get_client().get_boolean_value("checkout.new-flow", False, PRO) is True
    polls = flag_server.count("/sdk/v1/ruleset")
    flag_server.keys.add(VALID_KEY)  # the key is accepted again (rotation finished)
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    assert flag_server.count("/sdk/v1/ruleset") > polls
    assert provider.served_from == "source"
    assert api.get_client().get_provider_status() == ProviderStatus.READY


def test_midrun__key_revoked__held_snapshot_served_error_then_stale_then_ready(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """Before: PROVIDER_FATAL and every evaluation returned the default until restart."""
    provider = _provider(flag_server, provider_name, stale_after=0.5)
    api.set_provider_and_wait(provider)
    client = api.get_client()
    flag_server.keys.clear()
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1
    assert errors[0].error_code == ErrorCode.GENERAL  # not PROVIDER_FATAL: a snapshot is held
    assert client.get_provider_status() == ProviderStatus.ERROR
    served = [client.get_boolean_details("checkout.new-flow", False, PRO) for _ in range(500)]
    assert {(d.value, d.error_code) for d in served} == {(True, None)}
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1 and "401" in (stale[0].message or "")
    polls = flag_server.count("/sdk/v1/ruleset")
    assert wait_until(lambda: flag_server.count("/sdk/v1/ruleset") > polls)  # still retrying
    flag_server.keys.add(VALID_KEY)
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    assert client.get_provider_status() == ProviderStatus.READY
    assert len(recorder.of(ProviderEvent.PROVIDER_ERROR)) == 1


def test_midrun__403__same_as_401(flag_server: FlagServer, provider_name: str) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    flag_server.forbidden.add(VALID_KEY)
    assert wait_until(lambda: api.get_client().get_provider_status() == ProviderStatus.ERROR)
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"


def test_rotated_key__sdk_key_callable__new_key_used_without_restart(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """``sdk_key`` may be a callable (a mounted secret): each request asks it for the key."""
    current = {"key": VALID_KEY}
    provider = FlagappProvider(
        url=flag_server.url,
        sdk_key=lambda: current["key"],
        poll_interval=0.1,
        backoff_base=0.05,
        backoff_max=0.1,
        name=provider_name,
    )
    api.set_provider_and_wait(provider)
    flag_server.keys = {"fa_production_new"}  # the server rotated: the old key is refused
    recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    current["key"] = "fa_production_new"  # the secret file was updated
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    last = [r for r in flag_server.requests if r.path == "/sdk/v1/ruleset"][-1]
    assert last.headers["Authorization"] == "Bearer fa_production_new"


def test_midrun__no_snapshot_then_401__fatal_and_source_stops(
    provider_name: str, recorder: EventRecorder
) -> None:
    """PROVIDER_FATAL only when there is nothing at all to serve."""
    server = FlagServer(make_doc()).start()
    port = server.port
    server.stop()
    provider = _provider(server, provider_name, init_timeout=0.3)
    with pytest.raises(ProviderNotReadyError):
        api.set_provider_and_wait(provider)
    server = FlagServer(make_doc(), port=port)
    server.keys.clear()
    server.start()
    try:
        assert wait_until(lambda: api.get_client().get_provider_status() == ProviderStatus.FATAL)
        assert recorder.wait_for(
            lambda: any(
                e.error_code == ErrorCode.PROVIDER_FATAL
                for e in recorder.of(ProviderEvent.PROVIDER_ERROR)
            )
        )
        polls = server.count("/sdk/v1/ruleset")
        time.sleep(0.3)
        assert server.count("/sdk/v1/ruleset") == polls  # the source stopped
    finally:
        server.stop()


def test_midrun__server_dies__stale_once_then_ready_on_restart(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name, stale_after=0.3)
    api.set_provider_and_wait(provider)
    flag_server.stop()
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1
    # still serving the last snapshot while stale
    assert api.get_client().get_boolean_value("checkout.new-flow", False, PRO) is True
    flag_server.set_ruleset(make_doc(2), announce=False)
    flag_server.start()
    ready = recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)
    assert len(ready) == 2
    assert len(recorder.of(ProviderEvent.PROVIDER_STALE)) == 1
    # v2 only changed the version: one configuration-changed event naming no flag
    changed = recorder.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    assert [c.flags_changed for c in changed] == [[]]
    assert provider.snapshot is not None and provider.snapshot.version == 2


def test_midrun__500s__stale_after_window_and_recovery(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name, stale_after=0.3))
    flag_server.sticky = Scripted(status=500)
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)) == 1
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    assert recorder.of(ProviderEvent.PROVIDER_ERROR) == []


def test_midrun__500_briefly__no_stale_inside_window(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name, stale_after=30))
    flag_server.script.extend([Scripted(status=500), Scripted(status=503)])
    assert wait_until(lambda: not flag_server.script)
    time.sleep(0.3)
    assert recorder.kinds() == ["READY"]


def test_midrun__invalid_json__error_with_message_previous_kept(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    flag_server.sticky = Scripted(status=200, body=b'{"format": 1, "flags": ')
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1
    assert "not JSON" in (errors[0].message or "")
    assert errors[0].error_code == ErrorCode.PARSE_ERROR
    assert api.get_client().get_boolean_value("checkout.new-flow", False, PRO) is True
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2


def test_midrun__snapshot_fails_validation__rejected_whole(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    provider = _provider(flag_server, provider_name, cache_path=cache)
    api.set_provider_and_wait(provider)
    bad = make_doc(2)
    bad["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    bad["flags"]["api.page-size"]["variants"]["small"] = True  # bool in an integer flag
    flag_server.set_ruleset(bad)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and "api.page-size" in (errors[0].message or "")
    assert provider.snapshot is not None and provider.snapshot.version == 1
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"  # nothing applied
    assert json.loads(cache.read_text())["version"] == 1


def test_midrun__response_slower_than_timeout__treated_as_failure(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = _provider(flag_server, provider_name, read_timeout=0.2, stale_after=0.2)
    api.set_provider_and_wait(provider)
    flag_server.sticky = Scripted(delay=0.5)
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1 and "timed out" in (stale[0].message or "")
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2


def test_init__slow_server_with_lkg__lkg_served_then_server_snapshot(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    old = make_doc(1)
    old["etag"] = "sha256:older"
    old["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    _lkg(cache, flag_server).save(_parsed(old))
    # slow twice: the quick retry after the first timeout must not beat the file
    flag_server.script.extend([Scripted(delay=0.6), Scripted(delay=0.6)])
    provider = _provider(flag_server, provider_name, cache_path=cache, read_timeout=0.3)
    api.set_provider_and_wait(provider)
    assert provider.served_from == "last-known-good"
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"


def test_midrun__429__retry_after_honoured(flag_server: FlagServer, provider_name: str) -> None:
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    flag_server.script.append(Scripted(status=429, headers={"Retry-After": "1"}))
    assert wait_until(lambda: not flag_server.script)
    n = flag_server.count("/sdk/v1/ruleset")
    time.sleep(0.6)  # polls every 0.1s normally; Retry-After: 1 holds them back
    assert flag_server.count("/sdk/v1/ruleset") == n


def _parsed(doc: dict[str, object]):  # type: ignore[no-untyped-def]
    from openfeature_provider.engine import parse_ruleset

    return parse_ruleset(doc)


def test_init__server_down_no_lkg_but_bootstrap__served_stale_then_server_wins(
    provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    bootstrap = tmp_path / "bootstrap.json"
    shipped = make_doc(1)
    shipped["etag"] = "shipped"
    shipped["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    bootstrap.write_text(json.dumps(shipped))
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc(4)).start()
    port = server.port
    server.stop()
    provider = _provider(
        server, provider_name, cache_path=cache, bootstrap_path=bootstrap, stale_after=3600
    )
    api.set_provider_and_wait(provider)
    assert provider.served_from == "bootstrap"
    assert api.get_client().get_string_value("ui.theme", "x") == "light"
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1 and "bootstrap" in (stale[0].message or "")
    assert not cache.exists()  # a bootstrap is not a server snapshot: nothing cached
    server = FlagServer(make_doc(4), port=port).start()
    try:
        changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
        assert [c.flags_changed for c in changed] == [["ui.theme"]]
        assert len(recorder.of(ProviderEvent.PROVIDER_READY)) == 2
        assert api.get_client().get_string_value("ui.theme", "x") == "dark"
        assert wait_until(lambda: cache.exists())
    finally:
        server.stop()


def test_init__lkg_preferred_over_bootstrap(provider_name: str, tmp_path: Path) -> None:
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(make_doc(1)))
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc(7)).start()
    _lkg(cache, server).save(_parsed(make_doc(7)))
    server.stop()
    provider = _provider(server, provider_name, cache_path=cache, bootstrap_path=bootstrap)
    api.set_provider_and_wait(provider)
    assert provider.served_from == "last-known-good"
    assert provider.snapshot is not None and provider.snapshot.version == 7


def test_shutdown__polling_and_events_threads_stopped_idempotently(
    flag_server: FlagServer, provider_name: str, tmp_path: Path
) -> None:
    provider = _provider(flag_server, provider_name, cache_path=tmp_path / "c.json")
    api.set_provider_and_wait(provider)
    names = {t.name for t in threading.enumerate()}
    assert {"flagapp-poll", "flagapp-events"} <= names
    provider.shutdown()
    provider.shutdown()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("flagapp-")]
    polls = flag_server.count("/sdk/v1/ruleset")
    time.sleep(0.3)
    assert flag_server.count("/sdk/v1/ruleset") == polls


def _lkg(cache: Path, server: FlagServer, key: str = VALID_KEY) -> LastKnownGood:
    """The last-known-good file as a provider for ``server`` with ``key`` writes it."""
    return LastKnownGood(cache, server=server.url, sdk_key=key)


def test_lkg_newer_version_than_server__server_wins_then_file_follows_it(
    provider_name: str, tmp_path: Path
) -> None:
    """Issue 11 finding 6: a file at version 500 (restored database, re-created environment)
    was never replaced by the server's version 3, and a restart with the server down served
    the file's maintenance=true while the server said false."""
    cache = tmp_path / "lkg.json"
    maintenance = {"kind": "boolean", "enabled": True, "variants": {"on": True, "off": False}}
    old = make_doc(
        500, flags={"ops.maintenance": {**maintenance, "fallthrough": {"variant": "on"}}}
    )
    new = make_doc(3, flags={"ops.maintenance": {**maintenance, "fallthrough": {"variant": "off"}}})
    server = FlagServer(new).start()
    _lkg(cache, server).save(_parsed(old))
    try:
        provider = _provider(server, provider_name, cache_path=cache)
        api.set_provider_and_wait(provider)
        assert api.get_client().get_boolean_value("ops.maintenance", True) is False
        assert wait_until(lambda: json.loads(cache.read_text())["version"] == 3)
    finally:
        server.stop()
    api.clear_providers()
    # restart with the server down: the file now holds what the server last said
    again = _provider(server, provider_name + "-2", cache_path=cache)
    api.set_provider_and_wait(again)
    assert again.served_from == "last-known-good"
    assert api.get_client().get_boolean_value("ops.maintenance", True) is False


def test_init__staging_file_with_production_key__not_served(
    provider_name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc()).start()
    server.stop()
    staging = {**make_doc(9), "environment": "staging"}
    _lkg(cache, server, "fa_staging_" + "s" * 40).save(_parsed(staging))
    provider = FlagappProvider(
        url=server.url,
        sdk_key="fa_production_" + "p" * 40,
        cache_path=cache,
        init_timeout=0.5,
        connect_timeout=0.2,
        name=provider_name,
    )
    with pytest.raises(ProviderNotReadyError):
        api.set_provider_and_wait(provider)
    assert provider.snapshot is None


def test_init__lkg_saved_at_in_future__stale_once_past_window(
    provider_name: str, recorder: EventRecorder, tmp_path: Path
) -> None:
    """A future ``saved_at`` counts as now: the file goes STALE after the window, not never."""
    cache = tmp_path / "lkg.json"
    server = FlagServer(make_doc()).start()
    server.stop()
    _lkg(cache, server).save(_parsed(make_doc(5)))
    doc = json.loads(cache.read_text())
    doc["saved_at"] = time.time() + 30 * 86400
    cache.write_text(json.dumps(doc))
    provider = _provider(server, provider_name, cache_path=cache, stale_after=0.5)
    api.set_provider_and_wait(provider)
    assert provider.served_from == "last-known-good"
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1, timeout=5)) == 1
