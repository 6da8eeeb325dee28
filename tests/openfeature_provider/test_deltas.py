"""The provider's side of deltas (docs/protocol.md, "Deltas"): asks with ``A-IM``, applies a
226 delta, falls back to the full document when a delta does not apply, and works unchanged
against a server that knows nothing of deltas."""

from __future__ import annotations

import json
from typing import Any

import httpx

from openfeature_provider.engine import parse_ruleset
from openfeature_provider.engine.delta import make_delta
from openfeature_provider.engine.document import ruleset_document
from openfeature_provider.remote import StreamingSource
from openfeature_provider.transport import RulesetClient


def _doc(version: int, **flags: bool) -> dict[str, Any]:
    entries = {
        key: {
            "kind": "boolean",
            "enabled": on,
            "variants": {"on": True, "off": False},
            "fallthrough": {"variant": "on"},
        }
        for key, on in flags.items()
    }
    return {
        "format": 1,
        "environment": "production",
        "version": version,
        "etag": f"sha256:{version}",
        "flags": entries,
        "segments": {},
    }


V1 = _doc(1, a=True, b=True, c=False)
V2 = _doc(2, a=False, b=True, d=True)


class Server:
    """Answers like a flagapp server; ``deltas=False`` like one from before deltas."""

    def __init__(self, *, deltas: bool = True, bad_delta: bool = False) -> None:
        self.current = V1
        self.deltas = deltas
        self.bad_delta = bad_delta
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        held = request.headers.get("If-None-Match", "").strip('"')
        etag = self.current["etag"]
        if held == etag:
            return httpx.Response(304, headers={"ETag": f'"{etag}"'})
        if self.deltas and request.headers.get("A-IM") == "flagapp-delta" and held == "sha256:1":
            delta = make_delta(V1, self.current)
            if self.bad_delta:
                delta["counts"]["flags"] += 1
            return httpx.Response(
                226, json=delta, headers={"ETag": f'"{etag}"', "IM": "flagapp-delta"}
            )
        return httpx.Response(200, json=self.current, headers={"ETag": f'"{etag}"'})


def _client(server: Server, **kwargs: Any) -> RulesetClient:
    return RulesetClient(
        "http://flags.test", "key", transport=httpx.MockTransport(server), **kwargs
    )


def test_fetch__delta_answered__applied_equal_to_the_full_document() -> None:
    server = Server()
    client = _client(server)
    client.fetch()
    server.current = V2
    ruleset, changed = client.fetch()
    assert changed and ruleset == parse_ruleset(V2)
    assert ruleset.raw == {}  # no decoded document kept (issue 17 item 4) ...
    # ... the last-known-good file is written from the ruleset itself
    assert parse_ruleset(ruleset_document(ruleset)) == parse_ruleset(V2)
    assert server.requests[1].headers["A-IM"] == "flagapp-delta"
    assert (client.full_fetches, client.deltas_applied) == (1, 1)


def test_fetch__server_without_deltas__full_documents_as_before() -> None:
    server = Server(deltas=False)
    client = _client(server)
    client.fetch()
    server.current = V2
    ruleset, changed = client.fetch()
    assert changed and ruleset == parse_ruleset(V2)
    assert (client.full_fetches, client.deltas_applied) == (2, 0)


def test_fetch__delta_that_does_not_apply__one_full_fetch_instead() -> None:
    server = Server(bad_delta=True)
    client = _client(server)
    client.fetch()
    server.current = V2
    ruleset, _ = client.fetch()
    assert ruleset == parse_ruleset(V2)
    assert "A-IM" not in server.requests[-1].headers
    assert (client.full_fetches, client.deltas_applied) == (2, 0)


def test_fetch__deltas_off__never_asks_for_one() -> None:
    server = Server()
    client = _client(server, deltas=False)
    client.fetch()
    server.current = V2
    client.fetch()
    assert all("A-IM" not in r.headers for r in server.requests)


class _Seen:
    def __init__(self) -> None:
        self.rulesets: list[Any] = []
        self.errors: list[BaseException] = []

    def on_snapshot(self, ruleset: Any) -> None:
        self.rulesets.append(ruleset)

    def on_error(self, exc: BaseException, fatal: bool = False) -> None:
        self.errors.append(exc)


def _announcement(doc: dict[str, Any], delta: Any) -> str:
    data: dict[str, Any] = {
        "environment": "production",
        "version": doc["version"],
        "etag": doc["etag"],
    }
    if delta is not None:
        data["delta"] = delta
    return json.dumps(data)


def test_stream_announcement__inline_delta__applied_without_a_fetch() -> None:
    server = Server()
    source = StreamingSource("http://flags.test", "key", transport=httpx.MockTransport(server))
    seen = _Seen()
    source._listener = seen
    source.client.fetch()
    assert source._on_announcement(_announcement(V2, make_delta(V1, V2)))
    assert len(server.requests) == 1  # no fetch
    assert seen.rulesets[-1] == parse_ruleset(V2)


def test_stream_announcement__inline_delta_of_another_base__fetched_instead() -> None:
    server = Server()
    source = StreamingSource("http://flags.test", "key", transport=httpx.MockTransport(server))
    seen = _Seen()
    source._listener = seen
    source.client.fetch()
    server.current = V2
    other = make_delta(_doc(7, a=True), V2)
    assert source._on_announcement(_announcement(V2, other))
    assert len(server.requests) == 2  # fetched (as a 226 delta from what it holds)
    assert seen.rulesets[-1] == parse_ruleset(V2)
    assert seen.errors == []
