"""Fuzz: OFREP single and bulk evaluation with hostile request bodies (issue 11, deliverable 3).

Through Django's test client with a valid SDK key: generated rulesets are installed as the
environment's snapshot and hostile contexts posted as JSON text (lone surrogates as ``\\ud800``
escapes, NaN/Infinity, integers far beyond 64 bits, long strings, nesting up to 100,000
levels) plus bodies that are not JSON, not UTF-8 or not objects. Every answer must be JSON
with a 2xx/4xx status the protocol documents (200, 400, 404 for an unknown key, 413 over the
body cap) — never a 500. Skipped where Django is not installed (CI step 5).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("pytest_django")

from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagapp import evaluation
from openfeature_provider.engine import parse_ruleset
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import bearer
from tests.interop.ofrep_openapi import BULK as BULK_SHAPES
from tests.interop.ofrep_openapi import SINGLE as SINGLE_SHAPES
from tests.interop.ofrep_openapi import assert_valid

from .conftest import PHASES, examples, figures
from .strategies import Recipe, deep_json_text, recipes, rulesets

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

BULK = "/ofrep/v1/evaluate/flags"
_RAW_BODIES = [
    b"not json",
    b'{"context": "\xff"}',
    b"[1]",
    b'{"context": [1]}',
    b"\x00",
    b'{"context": {"a": ' + b"9" * 5000 + b"}}",
    b'{"context": {"a": 1e99999}}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"context": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    b'{"context": {"targetingKey": "\\ud800"}}',
    b'{"context": null}',
    b"",
]
_ALLOWED = {200, 400, 404, 413}


def _body(recipe: Recipe) -> bytes:
    ctx = json.dumps(recipe.base, skipkeys=True, ensure_ascii=True)  # NaN/Infinity as Python
    if recipe.deep is not None:
        attr, depth, container = recipe.deep
        deep = deep_json_text(depth, container)
        ctx = ctx[:-1] + ("," if recipe.base else "") + f"{json.dumps(attr)}: {deep}}}"
    return b'{"context": ' + ctx.encode() + b"}"


@pytest.fixture
def post(sdk_token: str) -> Callable[[str, bytes], Any]:
    client = Client()

    def send(path: str, body: bytes) -> Any:
        return client.post(path, data=body, content_type="application/json", **bearer(sdk_token))

    return send


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    phases=PHASES,
)
@given(
    ruleset=rulesets(),
    contexts=st.lists(recipes(json_only=True), min_size=1, max_size=5),
    raw=st.lists(st.sampled_from(_RAW_BODIES), max_size=2),
)
def test_fuzz_ofrep__hostile_bodies__json_answers_never_500(
    post: Callable[[str, bytes], Any],
    ruleset: dict[str, Any],
    contexts: list[Recipe],
    raw: list[bytes],
) -> None:
    fig = figures("ofrep", "max_request_us")
    evaluation.install("production", parse_ruleset(ruleset))
    keys = [*ruleset["flags"], "no.such.flag"]
    bodies = [_body(r) for r in contexts] + raw
    for i, body in enumerate(bodies):
        for path in (f"{BULK}/{keys[i % len(keys)]}", BULK):
            started = time.perf_counter()
            response = post(path, body)
            fig.max_seconds = max(fig.max_seconds, time.perf_counter() - started)
            status = response.status_code
            fig.statuses[status] = fig.statuses.get(status, 0) + 1
            fig.cases += 1
            if status >= 500:
                fig.crashes += 1
            assert status in _ALLOWED, (status, path, response.content[:500])
            assert response["Content-Type"].startswith("application/json"), path
            answer = json.loads(response.content)
            # Every answer with a schema is the protocol's shape (openapi.yaml; 413 has none).
            if status in (BULK_SHAPES if path == BULK else SINGLE_SHAPES):
                assert_valid(answer, status, bulk=path == BULK)
            if status == 200 and path == BULK:
                assert len(answer["flags"]) == len(ruleset["flags"])
            elif status == 404:
                assert path.endswith("no.such.flag")


def test_ofrep__lone_surrogate_in_rejected_field_name__json_400_not_500(
    post: Callable[[str, bytes], Any],
) -> None:
    evaluation.install("production", parse_ruleset(_FLAG_ONLY))
    body = b'{"context": {"company": {"\\udafb": NaN}}}'
    for path in (f"{BULK}/f0", BULK):
        response = post(path, body)
        assert response.status_code == 400
        assert json.loads(response.content)["errorCode"] == "INVALID_CONTEXT"


_FLAG_ONLY = {
    "format": 1,
    "environment": "production",
    "version": 1,
    "flags": {"f0": {"kind": "boolean", "enabled": True, "variants": {"on": True}}},
}
