"""File source, the SSE parser, backoff: the pieces under the network sources."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEvent

from openfeature_provider import FileSource, FlagappProvider, InvalidSnapshot
from openfeature_provider.engine import Ruleset, parse_ruleset
from openfeature_provider.exceptions import SourceUnavailable
from openfeature_provider.lkg import LastKnownGood
from openfeature_provider.remote import Backoff
from openfeature_provider.transport import format_etag, iter_sse, parse_etag
from tests.openfeature_provider.conftest import EventRecorder, make_doc


class Listener:
    def __init__(self) -> None:
        self.snapshots: list[Ruleset] = []
        self.errors: list[BaseException] = []

    def on_snapshot(self, ruleset: Ruleset) -> None:
        self.snapshots.append(ruleset)

    def on_error(self, exc: BaseException, fatal: bool = False) -> None:
        self.errors.append(exc)


def test_file_source__ruleset_file__delivered_on_start(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(make_doc(3)))
    listener = Listener()
    FileSource(path).start(listener)
    assert [s.version for s in listener.snapshots] == [3]


def test_file_source__lkg_file__accepted_as_bootstrap(tmp_path: Path) -> None:
    path = tmp_path / "lkg.json"
    LastKnownGood(path).save(parse_ruleset(make_doc(4)))
    listener = Listener()
    FileSource(path).start(listener)
    assert [s.version for s in listener.snapshots] == [4]


def test_file_source__missing_or_invalid__reported(tmp_path: Path) -> None:
    listener = Listener()
    FileSource(tmp_path / "none.json").start(listener)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    FileSource(bad).start(listener)
    assert [type(e) for e in listener.errors] == [SourceUnavailable, InvalidSnapshot]


def test_file_source__watched__reloads_change_and_keeps_previous_on_bad_edit(
    tmp_path: Path, provider_name: str, recorder: EventRecorder
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(make_doc(1)))
    source = FileSource(path, watch=True, watch_interval=0.05)
    provider = FlagappProvider(source=source, name=provider_name)
    api.set_provider_and_wait(provider)
    doc = make_doc(2)
    doc["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    path.write_text(json.dumps(doc))
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["ui.theme"]]
    path.write_text('{"format": 1, "truncated')
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)) == 1
    assert provider.snapshot is not None and provider.snapshot.version == 2
    provider.shutdown()
    assert not source._thread


def test_offline__file_source_with_provider__no_network_needed(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(make_doc()))
    api.set_provider_and_wait(FlagappProvider(source=FileSource(path)))
    assert api.get_client().get_integer_value("api.page-size", 0) == 100


def test_sse__events_comments_multiline_and_retry() -> None:
    comments: list[str] = []
    lines = [
        "retry: 2500",
        "",
        ": heartbeat",
        "id: 7",
        "event: snapshot",
        'data: {"version": 7,',
        'data: "etag": "e7"}',
        "",
        "data:no-space",
        "",
        "event: ignored-without-data",
        "",
    ]
    events = list(iter_sse(iter(lines), on_comment=comments.append))
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("message", "", None, 2500),
        ("snapshot", '{"version": 7,\n"etag": "e7"}', "7", None),
        ("message", "no-space", "7", None),
    ]
    assert comments == ["heartbeat"]


@pytest.mark.parametrize(
    ("header", "etag"),
    [('"sha256:ab"', "sha256:ab"), ('W/"x"', "x"), (None, None), ('""', None)],
)
def test_etag__parse(header: str | None, etag: str | None) -> None:
    assert parse_etag(header) == etag


def test_etag__format__strong_quoted() -> None:
    assert format_etag("sha256:ab") == '"sha256:ab"'


def test_backoff__grows_exponentially_with_jitter_and_caps() -> None:
    b = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    for n, d in enumerate(delays):
        step = min(4.0, 0.5 * 2**n)
        assert step / 2 <= d <= step
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next() <= 0.5


def test_in_memory_source__delta__applied_to_the_held_ruleset_and_delivered() -> None:
    from openfeature_provider import InMemorySource
    from openfeature_provider.engine.delta import make_delta

    v1 = make_doc(1)
    v2 = make_doc(2)
    v2["flags"]["ui.theme"]["enabled"] = False
    source = InMemorySource(v1)
    provider = FlagappProvider(source=source, name="delta-source")
    events = EventRecorder("delta-source")
    api.set_provider_and_wait(provider, "delta-source")
    try:
        before = provider.snapshot
        assert before is not None and before.raw == {}  # no decoded document kept
        source.apply_delta(make_delta(v1, v2))
        after = provider.snapshot
        assert after is not None and after.version == 2 and after == parse_ruleset(v2)
        assert after.flags["checkout.new-flow"] is before.flags["checkout.new-flow"]
        changed = ProviderEvent.PROVIDER_CONFIGURATION_CHANGED
        assert events.wait_for(lambda: events.of(changed))
        assert events.of(changed)[0].flags_changed == ["ui.theme"]
        with pytest.raises(InvalidSnapshot):  # another base: reported and raised
            source.apply_delta(make_delta(v1, v2))
    finally:
        api.clear_providers()
