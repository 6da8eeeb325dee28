"""flagd's own evaluator gherkin (flagd-testbed), run through the flagd import path.

Why: the import claims flagapp then serves what flagd served. The flagd-testbed's evaluator
features (vendored unchanged in ``flagd_testbed/``, see ``SOURCE``) state what flagd answers
for its ``testkit-flags.json``; here each scenario's flag is imported with
``flagapp.services.flagd.import_flagd_config`` (the services, one transaction), the
environment's snapshot is published, and the published document is evaluated by
``FlagappProvider`` through the OpenFeature SDK.

Bucketing: the testbed (3.9.0) ``@fractional-v2`` vectors are murmur3 of the *string* the
bucketing expression yields with integer arithmetic — flagd-core 1.x, i.e.
``--flagd-bucketing legacy`` (flagd-core 2.0.0, which hashes CBOR, answers differently: for
``jon@company.com`` on ``fractional-flag-shorthand`` it says "tails", the testbed "heads").
So every scenario imports with ``legacy``; the ``cbor`` reading is checked against
flagd-core 2.0.0 itself in test_flagd_import.py. ``@fractional-v1`` rows (float arithmetic,
older still) are skipped with that reason.

A flag the import refuses skips its scenario only if ``REFUSED`` lists it with the reason;
any other refusal fails, so a regression in the importer cannot hide as a skip.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails
from openfeature.provider.no_op_provider import NoOpProvider
from pytest_bdd import given, parsers, scenarios, then, when

from flagapp import services
from flagapp.publishing import latest
from flagapp.services.flagd import import_flagd_config
from openfeature_provider import FlagappProvider
from openfeature_provider.exceptions import FlagdImportError
from openfeature_provider.sources import InMemorySource

HERE = Path(__file__).with_name("flagd_testbed")
DEFS: dict[str, Any] = json.loads((HERE / "testkit-flags.json").read_text(encoding="utf-8"))

_NESTED = "computed variants/weights (@fractional-nested) have no flagapp form: a rollout names "
_FLAGD_NULL = (
    "an operator error that flagd turns into null (its defaultVariant, reason DEFAULT) is a "
    "malformed rule; flagapp refuses the file instead of importing a rule that never matches: "
)

#: Flags the import refuses, deliberately, and why (their scenarios are skipped).
REFUSED: dict[str, str] = {
    "fractional-nested-if-flag": _NESTED + "fixed variants",
    "fractional-nested-var-flag": _NESTED + "fixed variants",
    "fractional-nested-weight-flag": _NESTED + "fixed integer weights",
    "fractional-as-condition-flag": (
        "a fractional used as a condition (a boolean split) has no flagapp form: rollouts serve "
        "variants, they are not conditions"
    ),
    "fractional-as-condition-false-flag": (
        "a fractional used as a condition (a boolean split) has no flagapp form: rollouts serve "
        "variants, they are not conditions"
    ),
    "fractional-zero-weights-flag": _FLAGD_NULL + "weights summing to 0",
    "semver-invalid-version-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "semver-invalid-operator-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "semver-wrong-args-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "semver-v-prefix-flag": (
        "'v1.0.0' is not strict SemVer: flagd reads v-prefixed versions, flagapp's semver "
        "operators do not (docs/interop.md)"
    ),
    "semver-partial-version-flag": (
        "'1' is not strict SemVer: flagd reads partial versions, flagapp does not"
    ),
    "semver-numeric-context-flag": (
        "'1.1' is not strict SemVer: flagd reads partial versions, flagapp does not"
    ),
    "starts-with-non-string-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "ends-with-non-string-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "starts-with-wrong-args-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
    "ends-with-wrong-args-flag": (
        'targeting that yields a boolean (variants named "true"/"false") has no flagapp form'
    ),
}

#: Flags that import but answer differently from flagd on purpose (documented differences).
DIFFERENT: dict[str, str] = {
    "fractional-null-bucket-key-flag": (
        "a missing bucket value: flagd's fractional yields null (its defaultVariant, DEFAULT), "
        "flagapp answers the caller's default with TARGETING_KEY_MISSING (docs/interop.md, "
        "known differences)"
    ),
}

#: The @fractional-v1 examples are flagd's original float bucketing.
V1_REASON = (
    "@fractional-v1 vectors are flagd's original float bucketing (abs(signed murmur3) / "
    "i32::MAX * 100, checked by hand for the five fractional-flag rows), superseded by the "
    "integer arithmetic flagapp and flagd-core 1.x/2.x use; no import reproduces it"
)

scenarios(
    "flagd_testbed/fractional.feature",
    "flagd_testbed/semver.feature",
    "flagd_testbed/string.feature",
    "flagd_testbed/targeting.feature",
    "flagd_testbed/zero-values.feature",
    "flagd_testbed/disabled.feature",
)

pytestmark = pytest.mark.django_db


class World:
    def __init__(self, bucketing: str) -> None:
        self.bucketing = bucketing
        self.kind = "string"
        self.key = ""
        self.default: Any = None
        self.targeting_key: str | None = None
        self.context: dict[str, Any] = {}
        self.details: FlagEvaluationDetails[Any] | None = None


@pytest.fixture
def world(request: pytest.FixtureRequest, settings: Any) -> Iterator[World]:
    # The testbed's keys ("boolean-zero-flag") are not in flagapp's default team.purpose style.
    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "FLAG_KEY_PATTERN": r"^[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*$",
    }
    if request.node.get_closest_marker("fractional-v1") is not None:
        pytest.skip(V1_REASON)
    yield World("legacy")


def _parse_value(kind: str, raw: str) -> Any:
    if kind == "boolean":
        return raw.strip().lower() == "true"
    if kind == "integer":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "object":
        return json.loads(raw.replace('\\"', '"'))
    return raw


@given("an evaluator")
def an_evaluator(world: World) -> None:
    """The evaluator is flagapp's: the flag is imported when the scenario evaluates it."""


@given(
    parsers.re(
        r'a (?P<type_name>\w+)-flag with key "(?P<key>[^"]+)" '
        r'and a fallback value "(?P<default>.*)"$'
    )
)
def a_flag(world: World, type_name: str, key: str, default: str) -> None:
    world.kind = type_name.lower()
    world.key = key
    world.default = _parse_value(world.kind, default)


@given(parsers.parse('a context containing a targeting key with value "{value}"'))
def targeting_key(world: World, value: str) -> None:
    world.targeting_key = value


@given(
    parsers.re(
        r'a context containing a key "(?P<key>[^"]+)", with type "(?P<type_name>\w+)" '
        r'and with value "(?P<value>.*)"$'
    )
)
def context_value(world: World, key: str, type_name: str, value: str) -> None:
    world.context[key] = _parse_value(type_name.lower(), value)


@given(
    parsers.re(
        r'a context containing a nested property with outer key "(?P<outer>[^"]+)" and inner '
        r'key "(?P<inner>[^"]+)", with value "(?P<value>.*)"$'
    )
)
def nested_value(world: World, outer: str, inner: str, value: str) -> None:
    world.context.setdefault(outer, {})[inner] = value


def _import(world: World, django_capture_on_commit_callbacks: Any) -> None:
    Group.objects.get_or_create(name="testbed")
    services.create_environment(key="testbed", name="flagd testbed", actor=None, reason="t")
    defs = {"flags": {world.key: DEFS["flags"][world.key]}, "$evaluators": DEFS["$evaluators"]}
    with django_capture_on_commit_callbacks(execute=True):
        try:
            import_flagd_config(
                defs,
                environment="testbed",
                actor=None,
                reason="flagd-testbed",
                bucketing=world.bucketing,  # type: ignore[arg-type]
                owner="testbed",
            )
        except FlagdImportError as exc:
            if world.key in REFUSED:
                pytest.skip(f"flagapp refuses this flagd flag: {REFUSED[world.key]} ({exc})")
            raise


@when("the flag was evaluated with details")
def evaluated(world: World, django_capture_on_commit_callbacks: Any) -> None:
    _import(world, django_capture_on_commit_callbacks)
    assert world.key not in REFUSED, f"{world.key} imported though REFUSED lists it"
    if world.key in DIFFERENT:
        pytest.skip(f"imported; answers differently on purpose: {DIFFERENT[world.key]}")
    snapshot = latest("testbed")
    assert snapshot is not None
    domain = f"flagd-testbed-{uuid.uuid4()}"
    provider = FlagappProvider(source=InMemorySource(snapshot.data), send_events=False)
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        method = getattr(client, f"get_{world.kind}_details")
        ctx = EvaluationContext(world.targeting_key, world.context)
        world.details = method(world.key, world.default, ctx)
    finally:
        api.set_provider(NoOpProvider(), domain)
        provider.shutdown()


@then(parsers.re(r'the resolved details value should be "(?P<value>.*)"$'))
def resolved_value(world: World, value: str) -> None:
    assert world.details is not None
    expected = _parse_value(world.kind, value)
    assert world.details.value == expected, world.details
    assert type(world.details.value) is type(expected)


@then(parsers.parse('the reason should be "{reason}"'))
def reason_is(world: World, reason: str) -> None:
    assert world.details is not None
    assert str(getattr(world.details.reason, "value", world.details.reason)) == reason
