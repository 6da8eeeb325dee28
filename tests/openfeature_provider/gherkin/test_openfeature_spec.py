"""The OpenFeature specification's own gherkin, run through ``FlagappProvider`` with pytest-bdd.

The ``*.feature`` files beside this module are vendored unchanged from open-feature/spec
(``specification/assets/gherkin/``, Apache-2.0, see ``LICENSE`` and ``SOURCE`` here). They
describe a "stable provider" holding a fixed set of flags (``boolean-flag``, ``*-zero-flag``,
``*-targeted-zero-flag``, ``*-disabled-flag``, ``metadata-flag`` ...). ``TESTBED`` below is
that set written as a flagapp format-v1 ruleset, so every scenario runs the real provider and
engine through the published OpenFeature SDK: nothing is stubbed but the snapshot source.

Two scenarios are skipped on purpose (``DECISIONS``), each with the reason the provider
differs; every other scenario must pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ProviderFatalError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagEvaluationOptions
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider import ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider
from pytest_bdd import given, parsers, scenarios, then, when

from openfeature_provider import FlagappProvider
from openfeature_provider.exceptions import AuthenticationError, SourceUnavailable
from openfeature_provider.sources import InMemorySource, SnapshotListener

from .decisions import DECISIONS  # noqa: F401  (documented skips; applied in conftest.py)

HERE = Path(__file__).parent


def _variants(kind: str, on: Any, zero: Any) -> dict[str, Any]:
    return {"kind": kind, "on": on, "zero": zero}


_KINDS = {
    "boolean": ("on", True, "off", False),
    "string": ("greeting", "hi", "parting", ""),
    "integer": ("ten", 10, "zero", 0),
    "float": ("half", 0.5, "zero", 0.0),
    "object": (
        "template",
        {"showImages": True, "title": "Check out these pics!", "imagesPerPage": 100},
        "empty",
        {},
    ),
}


def _testbed() -> dict[str, Any]:
    """The spec's test flags as one flagapp ruleset (format v1)."""
    flags: dict[str, Any] = {}
    macrosoft = [{"attr": "email", "op": "ends_with", "values": ["@macrosoft.com"]}]
    for kind, (on_name, on_value, zero_name, zero_value) in _KINDS.items():
        variants = {on_name: on_value, zero_name: zero_value}
        flags[f"{kind}-flag"] = {
            "kind": kind,
            "enabled": True,
            "variants": variants,
            "fallthrough": {"variant": on_name},
        }
        flags[f"{kind}-zero-flag"] = {
            "kind": kind,
            "enabled": True,
            "variants": variants,
            "fallthrough": {"variant": zero_name},
        }
        flags[f"{kind}-targeted-zero-flag"] = {
            "kind": kind,
            "enabled": True,
            "variants": variants,
            "rules": [{"id": "macrosoft", "when": macrosoft, "serve": {"variant": zero_name}}],
            "fallthrough": {"variant": zero_name},
        }
        flags[f"{kind}-disabled-flag"] = {
            "kind": kind,
            "enabled": False,
            "variants": variants,
            "fallthrough": {"variant": on_name},
        }
    flags["metadata-flag"] = {
        "kind": "boolean",
        "enabled": True,
        "variants": {"on": True, "off": False},
        "fallthrough": {"variant": "on"},
        "metadata": {"string": "1.0.2", "integer": 2, "float": 0.1, "boolean": True},
    }
    internal_external = {"internal": "INTERNAL", "external": "EXTERNAL"}
    flags["context-aware"] = {
        "kind": "string",
        "enabled": True,
        "variants": internal_external,
        "rules": [
            {
                "id": "staff",
                "when": [
                    {"attr": "fn", "op": "eq", "values": ["Sulisław"]},
                    {"attr": "ln", "op": "eq", "values": ["Świętopełk"]},
                    {"attr": "age", "op": "eq", "values": [29]},
                    {"attr": "customer", "op": "eq", "values": [False]},
                ],
                "serve": {"variant": "internal"},
            }
        ],
        "fallthrough": {"variant": "external"},
    }
    flags["complex-targeted"] = {
        "kind": "string",
        "enabled": True,
        "variants": internal_external,
        "rules": [
            {
                "id": "internal-admins",
                "when": [
                    *macrosoft,
                    {"attr": "role", "op": "eq", "values": ["admin"]},
                    {"attr": "age", "op": "gte", "values": [18]},
                    {"attr": "customer", "op": "eq", "values": [False]},
                ],
                "serve": {"variant": "internal"},
            }
        ],
        "fallthrough": {"variant": "external"},
    }
    flags["wrong-flag"] = {
        "kind": "string",
        "enabled": True,
        "variants": {"one": "one"},
        "fallthrough": {"variant": "one"},
    }
    return {"format": 1, "environment": "spec", "version": 1, "flags": flags}


TESTBED = _testbed()


class _FailingSource:
    """A source whose first fetch fails: fatally (a rejected key) or transiently."""

    def __init__(self, *, fatal: bool) -> None:
        self.fatal = fatal

    def start(self, listener: SnapshotListener) -> None:
        if self.fatal:
            listener.on_error(AuthenticationError("SDK key rejected", 401), fatal=True)
        else:
            listener.on_error(SourceUnavailable("connection refused"))

    def stop(self) -> None:
        pass


class _RecordingHook(Hook):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before(self, hook_context: HookContext, hints: HookHints) -> EvaluationContext | None:
        self.calls.append("before")
        return None

    def after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.calls.append("after")

    def error(self, hook_context: HookContext, exception: Exception, hints: HookHints) -> None:
        self.calls.append("error")

    def finally_after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.calls.append("finally_after")


class World:
    """What one scenario has built so far."""

    def __init__(self) -> None:
        self.domain = f"spec-{uuid.uuid4().hex[:8]}"
        self.provider: FlagappProvider | None = None
        self.source: InMemorySource | None = None
        self.client: OpenFeatureClient = api.get_client(self.domain)
        self.kind = "string"
        self.key = ""
        self.default: Any = None
        self.context: dict[str, Any] = {}
        self.targeting_key: str | None = None
        self.details: FlagEvaluationDetails[Any] | None = None
        self.hook: _RecordingHook | None = None
        self.original_context: EvaluationContext | None = None
        self.legacy_value: Any = None

    def evaluate(self, options: FlagEvaluationOptions | None = None) -> FlagEvaluationDetails[Any]:
        ctx = EvaluationContext(self.targeting_key, self.context)
        if self.original_context is not None:
            ctx = self.original_context
        method = getattr(self.client, f"get_{self.kind}_details")
        self.details = method(self.key, self.default, ctx, options)
        return self.details


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    if w.source is not None and w.provider is not None and w.provider.snapshot is None:
        w.source.update(TESTBED)  # wakes an initialize() still waiting for a first snapshot
    api.set_provider(NoOpProvider(), w.domain)  # the SDK shuts the old provider down
    if w.provider is not None:
        w.provider.shutdown()


def _parse_value(kind: str, raw: str) -> Any:
    """A value as the feature files write it (``\\"`` escapes, JSON for objects)."""
    if kind == "boolean":
        return raw.strip().lower() == "true"
    if kind == "integer":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "object":
        return json.loads(raw.replace('\\"', '"'))
    return raw


def _kind_of(type_name: str) -> str:
    return type_name.strip().lower()


# -- providers -------------------------------------------------------------------------------


def _stable(world: World, **options: Any) -> FlagappProvider:
    world.source = InMemorySource(TESTBED)
    world.provider = FlagappProvider(source=world.source, send_events=False, **options)
    api.set_provider_and_wait(world.provider, world.domain)
    return world.provider


@given("a stable provider")
def stable_provider(world: World) -> None:
    _stable(world)


@given("a not ready provider")
def not_ready_provider(world: World) -> None:
    """Initialising and still waiting for its first snapshot (the SDK says NOT_READY)."""
    world.source = InMemorySource()
    world.provider = FlagappProvider(source=world.source, send_events=False, init_timeout=30)
    api.set_provider(world.provider, world.domain)  # initialises in the SDK's thread


@given("a fatal provider")
def fatal_provider(world: World) -> None:
    """The server rejected the SDK key and there is no snapshot at all."""
    world.provider = FlagappProvider(source=_FailingSource(fatal=True), send_events=False)
    with contextlib.suppress(ProviderFatalError):  # the SDK re-raises it
        api.set_provider_and_wait(world.provider, world.domain)


@given("a error provider")
def error_provider(world: World) -> None:
    """The server is unreachable and there is no last-known-good file."""
    world.provider = FlagappProvider(
        source=_FailingSource(fatal=False), send_events=False, init_timeout=0.2
    )
    with contextlib.suppress(ProviderNotReadyError):  # no snapshot and no file
        api.set_provider_and_wait(world.provider, world.domain)


@given("a stale provider")
def stale_provider(world: World) -> None:
    """Serving a snapshot while the source keeps failing past ``stale_after``."""
    provider = _stable(world, stale_after=0.0)
    assert world.source is not None
    stale = threading.Event()

    def on_stale(_details: Any) -> None:
        stale.set()

    from openfeature.event import ProviderEvent

    world.client.add_handler(ProviderEvent.PROVIDER_STALE, on_stale)
    for _ in range(3):
        world.source.fail(SourceUnavailable("connection refused"))
    assert stale.wait(5), f"no STALE event (health {provider.health})"


# -- v2 steps --------------------------------------------------------------------------------


@given(
    parsers.re(
        r'a (?P<type_name>\w+)-flag with key "(?P<key>[^"]+)" '
        r'and a fallback value "(?P<default>.*)"$'
    )
)
def a_flag(world: World, type_name: str, key: str, default: str) -> None:
    world.kind = _kind_of(type_name)
    world.key = key
    world.default = _parse_value(world.kind, default)


@given(
    parsers.parse(
        'a context containing a key "{key}", with type "{type_name}" and with value "{value}"'
    )
)
def context_value(world: World, key: str, type_name: str, value: str) -> None:
    world.context[key] = _parse_value(_kind_of(type_name), value)


@given(parsers.parse('a context containing a key "{key}" with null value'))
def context_null(world: World, key: str) -> None:
    world.context[key] = None


@given("evaluation options containing specific hooks")
def options_with_hooks(world: World) -> None:
    world.hook = _RecordingHook()


@given("an evaluation context with modifiable data")
def modifiable_context(world: World) -> None:
    world.original_context = EvaluationContext(
        "user-1", {"email": "ballmer@macrosoft.com", "tags": ["a", "b"], "nested": {"n": 1}}
    )
    world.context = copy.deepcopy(dict(world.original_context.attributes))


@when("the flag was evaluated with details")
def evaluated(world: World) -> None:
    world.evaluate()


@when("the flag was evaluated with details using the evaluation options")
def evaluated_with_options(world: World) -> None:
    assert world.hook is not None
    world.evaluate(FlagEvaluationOptions(hooks=[world.hook]))


@when("the flag was evaluated with details asynchronously")
def evaluated_async(world: World) -> None:
    async def run() -> FlagEvaluationDetails[Any]:
        method = getattr(world.client, f"get_{world.kind}_details_async")
        ctx = EvaluationContext(world.targeting_key, world.context)
        result: FlagEvaluationDetails[Any] = await method(world.key, world.default, ctx)
        return result

    world.details = asyncio.run(run())


@then(parsers.re(r'the resolved details value should be "(?P<value>.*)"$'))
def resolved_value(world: World, value: str) -> None:
    assert world.details is not None
    expected = _parse_value(world.kind, value)
    assert world.details.value == expected
    assert type(world.details.value) is type(expected)


@then(parsers.parse('the reason should be "{reason}"'))
def reason_is(world: World, reason: str) -> None:
    assert world.details is not None
    assert str(getattr(world.details.reason, "value", world.details.reason)) == reason


@then(parsers.parse('the error-code should be "{code}"'))
def error_code_is(world: World, code: str) -> None:
    assert world.details is not None
    assert world.details.error_code is not None
    assert str(world.details.error_code.value) == code


@then(parsers.parse('the flag key should be "{key}"'))
def flag_key_is(world: World, key: str) -> None:
    assert world.details is not None and world.details.flag_key == key


@then(parsers.re(r'the variant should be "(?P<variant>[^"]*)"$'))
def variant_is(world: World, variant: str) -> None:
    assert world.details is not None and world.details.variant == variant


@then("the resolved metadata should contain")
def metadata_contains(world: World, datatable: list[list[str]]) -> None:
    assert world.details is not None
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"]
    for key, type_name, raw in rows:
        expected = _parse_value(_kind_of(type_name), raw)
        got = world.details.flag_metadata[key]
        assert got == expected and type(got) is type(expected), (key, got)


@then("the resolved metadata is empty")
def metadata_empty(world: World) -> None:
    assert world.details is not None and not world.details.flag_metadata


@then(parsers.parse('the provider status should be "{status}"'))
def provider_status(world: World, status: str) -> None:
    assert world.client.get_provider_status() == ProviderStatus[status]


@then("the specified hooks should execute during evaluation")
def hooks_ran(world: World) -> None:
    assert world.hook is not None and world.hook.calls, "hook never called"
    assert "error" not in world.hook.calls


@then("the hook order should be maintained")
def hook_order(world: World) -> None:
    assert world.hook is not None
    assert world.hook.calls == ["before", "after", "finally_after"]


@then("the original evaluation context should remain unmodified")
def context_unmodified(world: World) -> None:
    assert world.original_context is not None
    assert dict(world.original_context.attributes) == world.context


@then("the evaluation details should be immutable")
def details_immutable(world: World) -> None:
    """What the provider controls: flag metadata is read-only and values are not shared.

    ``FlagEvaluationDetails`` itself is the SDK's (a plain dataclass in openfeature-sdk
    0.10), so the provider guarantees the parts it hands over.
    """
    assert world.details is not None
    with pytest.raises(TypeError):
        world.details.flag_metadata["snapshotVersion"] = 99  # type: ignore[index]
    obj = world.client.get_object_details("object-flag", {})
    obj.value["title"] = "changed"  # type: ignore[index]
    again = world.client.get_object_details("object-flag", {})
    assert again.value["title"] == "Check out these pics!"  # type: ignore[index]


@then("the evaluation should complete without blocking")
def completed(world: World) -> None:
    assert world.details is not None


# -- v1 (deprecated evaluation.feature) steps -------------------------------------------------

_V1_KIND = {"a boolean": "boolean", "a string": "string", "an integer": "integer"}
_V1_KIND |= {"a float": "float", "an object": "object"}


@when(
    parsers.re(
        r'(?P<article>a boolean|a string|an integer|a float) flag with key "(?P<key>[^"]+)" '
        r'is evaluated with default value "?(?P<default>[^"]*)"?$'
    )
)
def v1_evaluated_value(world: World, article: str, key: str, default: str) -> None:
    world.kind, world.key = _V1_KIND[article], key
    world.default = _parse_value(world.kind, default)
    world.evaluate()


@when(
    parsers.re(
        r'(?P<article>a boolean|a string|an integer|a float) flag with key "(?P<key>[^"]+)" '
        r'is evaluated with details and default value "?(?P<default>[^"]*)"?$'
    )
)
def v1_evaluated_details(world: World, article: str, key: str, default: str) -> None:
    v1_evaluated_value(world, article, key, default)


@when(
    parsers.re(
        r'an object flag with key "(?P<key>[^"]+)" is evaluated( with details and|'
        r" with) a null default value"
    )
)
def v1_object(world: World, key: str) -> None:
    world.kind, world.key, world.default = "object", key, {}
    world.evaluate()


@then(
    parsers.re(
        r'the resolved (?P<kind>boolean|string|integer|float) value should be "?(?P<value>[^"]*)"?$'
    )
)
def v1_value(world: World, kind: str, value: str) -> None:
    assert world.details is not None
    assert world.details.value == _parse_value(kind, value)


@then(
    parsers.re(
        r"the resolved (?P<kind>boolean|string|integer|float) details value should be "
        r'"?(?P<value>[^",]*)"?, the variant should be "(?P<variant>[^"]+)", and the reason '
        r'should be "(?P<reason>[^"]+)"'
    )
)
def v1_details(world: World, kind: str, value: str, variant: str, reason: str) -> None:
    v1_value(world, kind, value)
    variant_is(world, variant)
    reason_is(world, reason)


@then(
    parsers.re(
        r"the resolved object (details )?value should be contain fields "
        r'"(?P<f1>[^"]+)", "(?P<f2>[^"]+)", and "(?P<f3>[^"]+)", with values '
        r'"(?P<v1>[^"]+)", "(?P<v2>[^"]+)" and (?P<v3>\d+), respectively'
    )
)
def v1_object_fields(world: World, f1: str, f2: str, f3: str, v1: str, v2: str, v3: str) -> None:
    assert world.details is not None
    value = world.details.value
    assert value[f1] is (v1 == "true") and value[f2] == v2 and value[f3] == int(v3)


@then(
    parsers.re(
        r'the variant should be "(?P<variant>[^"]+)", and the reason should be "(?P<reason>[^"]+)"'
    )
)
def v1_variant_reason(world: World, variant: str, reason: str) -> None:
    variant_is(world, variant)
    reason_is(world, reason)


@when(
    parsers.re(
        r'context contains keys "(?P<k1>[^"]+)", "(?P<k2>[^"]+)", "(?P<k3>[^"]+)", '
        r'"(?P<k4>[^"]+)" with values "(?P<v1>[^"]+)", "(?P<v2>[^"]+)", (?P<v3>\d+), '
        r'"(?P<v4>[^"]+)"'
    )
)
def v1_context(
    world: World, k1: str, k2: str, k3: str, k4: str, v1: str, v2: str, v3: str, v4: str
) -> None:
    world.context = {k1: v1, k2: v2, k3: int(v3), k4: v4 == "true"}


@when(parsers.parse('a flag with key "{key}" is evaluated with default value "{default}"'))
def v1_context_flag(world: World, key: str, default: str) -> None:
    world.kind, world.key, world.default = "string", key, default
    world.evaluate()


@then(parsers.parse('the resolved string response should be "{value}"'))
def v1_string_response(world: World, value: str) -> None:
    assert world.details is not None and world.details.value == value


@then(parsers.parse('the resolved flag value is "{value}" when the context is empty'))
def v1_empty_context(world: World, value: str) -> None:
    world.context = {}
    assert world.evaluate().value == value


@when(
    parsers.parse(
        'a non-existent string flag with key "{key}" is evaluated with details and a '
        'fallback value "{default}"'
    )
)
def v1_missing(world: World, key: str, default: str) -> None:
    world.kind, world.key, world.default = "string", key, default
    world.evaluate()


@when(
    parsers.parse(
        'a string flag with key "{key}" is evaluated as an integer, with details and a '
        "fallback value {default:d}"
    )
)
def v1_wrong_type(world: World, key: str, default: int) -> None:
    world.kind, world.key, world.default = "integer", key, default
    world.evaluate()


@then(parsers.re(r"the default (?P<kind>string|integer) value should be returned"))
def v1_default_returned(world: World, kind: str) -> None:
    assert world.details is not None and world.details.value == world.default


@then(
    parsers.re(
        r"the reason should indicate an error and the error code should indicate a "
        r'(missing flag|type mismatch) with "(?P<code>[A-Z_]+)"'
    )
)
def v1_error(world: World, code: str) -> None:
    reason_is(world, "ERROR")
    error_code_is(world, code)


scenarios(str(HERE / "evaluation.feature"))
scenarios(str(HERE / "evaluation_v2.feature"))
scenarios(str(HERE / "metadata.feature"))
