"""Deep object variants (issue 11 finding 7): server and SDK must agree on every value.

A 600-level object variant used to be served by OFREP while the provider returned the
caller's default: copying it for the caller (``copy.deepcopy``) hit Python's recursion limit.
The engine now refuses variants nested deeper than ``MAX_OBJECT_DEPTH`` (64) on the server and
in every SDK alike, and the provider copies values iteratively, so nothing the engine accepts
can fail to be served, and nothing deeper reaches an evaluation.
"""

from __future__ import annotations

import sys
from typing import Any

from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode

from openfeature_provider import FlagappProvider
from openfeature_provider.engine import MAX_OBJECT_DEPTH
from openfeature_provider.engine.adapt import copy_value
from tests.openfeature_provider.conftest import EventRecorder, make_doc, wait_until
from tests.openfeature_provider.flag_server import VALID_KEY, FlagServer, Scripted


def _nested(levels: int) -> dict[str, Any]:
    """``levels`` containers, alternating objects and arrays, with a leaf at the bottom."""
    value: Any = "leaf"
    for i in range(levels):
        value = {"d": value} if i % 2 == 0 else [value]
    assert isinstance(value, dict)
    return value


def _object_flag(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "object",
        "enabled": True,
        "variants": {"deep": value},
        "fallthrough": {"variant": "deep"},
    }


def _provider(server: FlagServer, name: str) -> FlagappProvider:
    return FlagappProvider(
        url=server.url,
        sdk_key=VALID_KEY,
        poll_interval=0.1,
        backoff_base=0.05,
        backoff_max=0.1,
        name=name,
    )


def test_object__deepest_the_engine_accepts__served_over_http_and_copied(
    provider_name: str,
) -> None:
    deep = _nested(MAX_OBJECT_DEPTH if MAX_OBJECT_DEPTH % 2 else MAX_OBJECT_DEPTH - 1)
    server = FlagServer(make_doc(flags={"ui.deep": _object_flag(deep)})).start()
    try:
        api.set_provider_and_wait(_provider(server, provider_name))
        details = api.get_client().get_object_details("ui.deep", {"fallback": True})
        assert details.error_code is None
        assert details.value == deep
        details.value["d"] = "mutated"  # type: ignore[index]
        assert api.get_client().get_object_value("ui.deep", {}) == deep
    finally:
        server.stop()


def test_object__600_levels_from_the_server__snapshot_rejected_previous_kept(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """What an older server still publishes: rejected whole with the path, never a crash."""
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    doc = make_doc(2, flags={"ui.deep": _object_flag(_nested(601))})
    flag_server.set_ruleset(doc)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and errors[0].error_code == ErrorCode.PARSE_ERROR
    assert "ui.deep" in (errors[0].message or "")
    assert "64" in (errors[0].message or "")
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"  # v1 still served


def test_fetch__json_nested_100000_deep__parse_error_and_polling_goes_on(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    """Before: RecursionError escaped the fetch and ended the poll thread for good."""
    api.set_provider_and_wait(_provider(flag_server, provider_name))
    flag_server.sticky = Scripted(body=b"[" * 100_000 + b"]" * 100_000)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and errors[0].error_code == ErrorCode.PARSE_ERROR
    assert "crashed" not in (errors[0].message or "")
    polls = flag_server.count("/sdk/v1/ruleset")
    assert wait_until(lambda: flag_server.count("/sdk/v1/ruleset") > polls + 2)
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2


def test_copy_value__far_deeper_than_recursion_limit__copied_iteratively() -> None:
    """The copy does not depend on the engine's bound: no depth can raise RecursionError."""
    levels = sys.getrecursionlimit() * 5 + 1
    deep = _nested(levels)
    copied = copy_value(deep)
    node: Any = copied
    original: Any = deep
    for _ in range(levels):
        assert node is not original
        node = node["d"] if isinstance(node, dict) else node[0]
        original = original["d"] if isinstance(original, dict) else original[0]
    assert node == "leaf"
