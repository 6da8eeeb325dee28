"""Resolution through the real OpenFeature client: types, reasons, errors, metadata."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

import openfeature_provider.resolving as resolving_module
from openfeature_provider import FlagappProvider, InMemorySource, InvalidSnapshot
from openfeature_provider.engine import Resolution, parse_ruleset
from tests.openfeature_provider.conftest import make_doc

PRO = EvaluationContext("user-42", {"plan": "pro"})


@pytest.fixture
def source() -> InMemorySource:
    return InMemorySource(make_doc())


@pytest.fixture
def provider(source: InMemorySource) -> FlagappProvider:
    p = FlagappProvider(source=source)
    api.set_provider_and_wait(p)
    return p


@pytest.fixture
def client(provider: FlagappProvider) -> OpenFeatureClient:
    return api.get_client()


def test_metadata__name__is_flagapp(provider: FlagappProvider) -> None:
    assert provider.get_metadata().name == "flagapp"
    assert api.get_provider_metadata().name == "flagapp"


def test_boolean__rule_matches__targeting_match_with_variant_and_metadata(
    client: OpenFeatureClient,
) -> None:
    d = client.get_boolean_details("checkout.new-flow", False, PRO)
    assert (d.value, d.variant, d.reason, d.error_code) == (True, "on", "TARGETING_MATCH", None)
    assert dict(d.flag_metadata) == {
        "owner": "payments",
        "type": "release",
        "version": 7,
        "snapshotVersion": 1,
    }


def test_boolean__no_rule_matches__default_reason_fallthrough_variant(
    client: OpenFeatureClient,
) -> None:
    d = client.get_boolean_details("checkout.new-flow", True, EvaluationContext("u", {}))
    assert (d.value, d.variant, d.reason) == (False, "off", "DEFAULT")


def test_string__static__value(client: OpenFeatureClient) -> None:
    d = client.get_string_details("ui.theme", "x")
    assert (d.value, d.variant, d.reason) == ("dark", "dark", "STATIC")


def test_integer__static__int_value(client: OpenFeatureClient) -> None:
    d = client.get_integer_details("api.page-size", 0)
    assert d.value == 100 and type(d.value) is int and d.error_code is None


def test_float__integral_variant__served_as_float(client: OpenFeatureClient) -> None:
    d = client.get_float_details("pricing.discount", 0.5)
    assert d.value == 2.0 and type(d.value) is float and d.error_code is None


def test_object__value__is_a_copy_callers_cannot_corrupt(client: OpenFeatureClient) -> None:
    d = client.get_object_details("ui.layout", {})
    assert d.value == {"columns": 3, "tags": ["a"]}
    d.value["tags"].append("mutated")  # type: ignore[index, union-attr]
    assert client.get_object_value("ui.layout", {}) == {"columns": 3, "tags": ["a"]}


def test_disabled__kill_switch__callers_default_reason_disabled(
    client: OpenFeatureClient,
) -> None:
    d = client.get_boolean_details("ops.kill", False)
    assert (d.value, d.variant, d.reason, d.error_code) == (False, None, "DISABLED", None)


def test_unknown_flag__flag_not_found_enum(client: OpenFeatureClient) -> None:
    d = client.get_boolean_details("nope.nope", True)
    assert d.value is True
    assert d.reason == Reason.ERROR
    assert d.error_code is ErrorCode.FLAG_NOT_FOUND


@pytest.mark.parametrize(
    ("method", "flag", "default"),
    [
        ("get_integer_details", "checkout.new-flow", 3),  # a bool flag asked as integer
        ("get_float_details", "api.page-size", 1.5),  # integer flag asked as float
        ("get_boolean_details", "ui.theme", False),
        ("get_string_details", "ui.layout", "x"),
        ("get_object_details", "api.page-size", {}),
        ("get_integer_details", "ops.kill", 3),  # type mismatch is checked before disabled
    ],
)
def test_wrong_type__type_mismatch_enum_and_default(
    client: OpenFeatureClient, method: str, flag: str, default: Any
) -> None:
    d = getattr(client, method)(flag, default)
    assert d.value == default
    assert d.error_code is ErrorCode.TYPE_MISMATCH


def test_integer_flag__bool_variant__rejected_at_parse(source: InMemorySource) -> None:
    doc = make_doc(2)
    doc["flags"]["api.page-size"]["variants"]["small"] = True
    with pytest.raises(InvalidSnapshot):
        source.update(doc)


def test_integer_flag__engine_serves_bool__type_mismatch(
    provider: FlagappProvider, source: InMemorySource, client: OpenFeatureClient
) -> None:
    # Defence in depth: even if a resolution carried a bool for an integer flag, the SDK
    # (which lets bool pass as int) must not hand it to the caller.
    ruleset = parse_ruleset(make_doc(2))
    flag = ruleset.flags["api.page-size"]
    bad = Resolution("api.page-size", True, "small", "STATIC")
    flags = dict(ruleset.flags)
    flags["api.page-size"] = dataclasses.replace(flag, compiled=lambda ctx: bad)
    source.update(dataclasses.replace(ruleset, flags=flags, etag="other"))
    d = client.get_integer_details("api.page-size", 5)
    assert (d.value, d.error_code) == (5, ErrorCode.TYPE_MISMATCH)


def test_rollout__no_targeting_key__targeting_key_missing(source: InMemorySource) -> None:
    doc = make_doc(
        2,
        flags={
            "exp.split": {
                "kind": "string",
                "enabled": True,
                "variants": {"a": "a", "b": "b"},
                "fallthrough": {
                    "rollout": {
                        "weights": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 1}]
                    }
                },
            }
        },
    )
    provider = FlagappProvider(source=InMemorySource(doc))
    api.set_provider_and_wait(provider)
    client = api.get_client()
    missing = client.get_string_details("exp.split", "z", EvaluationContext())
    assert missing.error_code is ErrorCode.TARGETING_KEY_MISSING and missing.value == "z"
    split = client.get_string_details("exp.split", "z", EvaluationContext("user-1"))
    assert split.reason == "SPLIT" and split.value in ("a", "b")
    again = client.get_string_details("exp.split", "z", EvaluationContext("user-1", {"x": 1}))
    assert again.value == split.value  # sticky


def test_engine_raises__general_error_never_an_exception(
    source: InMemorySource, client: OpenFeatureClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine bug")

    ruleset = parse_ruleset(make_doc(2))
    flags = dict(ruleset.flags)
    flags["checkout.new-flow"] = dataclasses.replace(flags["checkout.new-flow"], compiled=boom)
    source.update(dataclasses.replace(ruleset, flags=flags, etag="other"))
    d = client.get_boolean_details("checkout.new-flow", False, PRO)
    assert (d.value, d.error_code) == (False, ErrorCode.GENERAL)
    assert "engine bug" in (d.error_message or "")
    monkeypatch.setattr(resolving_module, "evaluate", boom)  # the error paths' entry point
    d = client.get_boolean_details("nope", True, PRO)
    assert (d.value, d.error_code) == (True, ErrorCode.GENERAL)


def test_resolve__before_initialize__provider_not_ready_details() -> None:
    provider = FlagappProvider(source=InMemorySource(make_doc()))
    r = provider.resolve_boolean_details(flag_key="checkout.new-flow", default_value=False)
    assert (r.value, r.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)


def test_resolvers__called_with_keywords__work(provider: FlagappProvider) -> None:
    r = provider.resolve_string_details(
        flag_key="ui.theme", default_value="x", evaluation_context=None
    )
    assert r.value == "dark"


def test_async__all_five__same_as_sync(client: OpenFeatureClient) -> None:
    async def run() -> list[Any]:
        return [
            (await client.get_boolean_details_async("checkout.new-flow", False, PRO)).value,
            (await client.get_string_details_async("ui.theme", "x")).value,
            (await client.get_integer_details_async("api.page-size", 0)).value,
            (await client.get_float_details_async("pricing.discount", 0.0)).value,
            (await client.get_object_details_async("ui.layout", {})).value,
        ]

    assert asyncio.run(run()) == [True, "dark", 100, 2.0, {"columns": 3, "tags": ["a"]}]


def test_context__targeting_key_and_nested_attributes__reach_the_engine(
    source: InMemorySource, client: OpenFeatureClient
) -> None:
    doc = make_doc(
        2,
        flags={
            "t.nested": {
                "kind": "boolean",
                "enabled": True,
                "variants": {"on": True, "off": False},
                "rules": [
                    {
                        "id": "r",
                        "when": [
                            {"attr": "company.plan", "op": "eq", "values": ["big"]},
                            {"attr": "targetingKey", "op": "eq", "values": ["u7"]},
                        ],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
            }
        },
    )
    source.update(doc)
    ctx = EvaluationContext("u7", {"company": {"plan": "big"}})
    assert client.get_boolean_value("t.nested", False, ctx) is True
    other = EvaluationContext("u8", ctx.attributes)
    assert client.get_boolean_value("t.nested", False, other) is False


def test_snapshot_swap__concurrent_readers__always_see_one_whole_version(
    source: InMemorySource, client: OpenFeatureClient
) -> None:
    # v(even) serves "light", v(odd) "dark" (as v1 does): a reader must
    # never see a value from one version with the metadata of another.
    docs = []
    for v in range(2, 42):
        d = make_doc(v)
        d["flags"]["ui.theme"]["fallthrough"] = {"variant": "dark" if v % 2 else "light"}
        docs.append(parse_ruleset(d))
    stop = threading.Event()
    bad: list[Any] = []

    def reader() -> None:
        while not stop.is_set():
            d = client.get_string_details("ui.theme", "x")
            version = d.flag_metadata["snapshotVersion"]
            if d.value != ("dark" if version % 2 else "light"):  # type: ignore[operator]
                bad.append((d.value, version))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for ruleset in docs:
            source.update(ruleset)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        sys.setswitchinterval(old)
    assert bad == []
