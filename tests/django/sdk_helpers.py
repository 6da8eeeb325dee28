"""Fixtures shared by the SDK/OFREP/stream/events tests (not a test module).

Rulesets are installed straight into the per-process evaluation cache where a test is about
the HTTP surface; the end-to-end tests (test_provider_live*.py) go through the services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from django.core.cache import caches

from flagapp import evaluation, sampling
from flagapp.sdk import keys
from openfeature_provider.engine import Ruleset, parse_ruleset

#: Fixtures, for ``from .sdk_helpers import *`` in the test modules.
__all__ = [
    "clean_sdk_state",
    "environments",
    "install_flags",
    "sdk_token",
    "staging_token",
]


def flag_doc(
    kind: str = "boolean",
    variants: Mapping[str, Any] | None = None,
    *,
    enabled: bool = True,
    fallthrough: Any = "on",
    rules: list[dict[str, Any]] | None = None,
    prerequisites: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if variants is None:
        variants = {"on": True, "off": False}
    if isinstance(fallthrough, str):
        fallthrough = {"variant": fallthrough}
    doc: dict[str, Any] = {
        "kind": kind,
        "enabled": enabled,
        "variants": dict(variants),
        "fallthrough": fallthrough,
        "metadata": {"owner": "tests", "type": "release", "version": 3},
    }
    if rules:
        doc["rules"] = rules
    if prerequisites:
        doc["prerequisites"] = prerequisites
    return doc


def ruleset_doc(
    flags: Mapping[str, Any], *, environment: str = "production", version: int = 1
) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": environment,
        "version": version,
        "etag": f"sha256:test-{environment}-{version}",
        "flags": dict(flags),
        "segments": {},
    }


#: One flag of every kind plus the awkward cases, used by the OFREP tests.
ALL_KINDS: dict[str, Any] = {
    "demo.bool": flag_doc(),
    "demo.string": flag_doc("string", {"a": "alpha", "b": "beta"}, fallthrough="b"),
    "demo.int": flag_doc("integer", {"small": 1, "big": 100}, fallthrough="big"),
    "demo.float": flag_doc("float", {"one": 1.0, "half": 0.5}, fallthrough="one"),
    "demo.object": flag_doc("object", {"cfg": {"limit": 3, "tags": ["x"]}}, fallthrough="cfg"),
    "demo.off": flag_doc(enabled=False),
    "demo.zero": flag_doc("integer", {"zero": 0}, fallthrough="zero"),
    "demo.gated": flag_doc(prerequisites=[{"flag": "demo.off", "variants": ["on"]}]),
    "demo.pro": flag_doc(
        rules=[
            {
                "id": "pro",
                "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"variant": "on"},
            }
        ],
        fallthrough="off",
    ),
    "demo.split": flag_doc(
        fallthrough={
            "rollout": {
                "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 1}]
            }
        }
    ),
    "demo.nodefault": flag_doc(
        rules=[
            {
                "id": "r",
                "when": [{"attr": "plan", "op": "eq", "values": ["x"]}],
                "serve": {"variant": "on"},
            }
        ],
        fallthrough=None,
    ),
}


@pytest.fixture(autouse=True)
def clean_sdk_state() -> Iterator[None]:
    """Cold caches, no buffered samples, before and after every test."""
    evaluation.clear_cache()
    caches["default"].clear()
    keys.clear_cache()
    sampling.reset()
    yield
    evaluation.clear_cache()
    caches["default"].clear()
    keys.clear_cache()
    sampling.reset()


@pytest.fixture
def install_flags() -> Callable[..., Ruleset]:
    def install(
        flags: Mapping[str, Any], *, environment: str = "production", version: int = 1
    ) -> Ruleset:
        ruleset = parse_ruleset(ruleset_doc(flags, environment=environment, version=version))
        evaluation.install(environment, ruleset)
        return ruleset

    return install


@pytest.fixture
def environments(db: Any) -> dict[str, Any]:
    from flagapp.models import Environment

    return {
        key: Environment.objects.get_or_create(key=key, defaults={"name": key.title()})[0]
        for key in ("production", "staging")
    }


@pytest.fixture
def sdk_token(environments: dict[str, Any]) -> str:
    _key, token = keys.create_sdk_key(environments["production"], name="tests")
    return token


@pytest.fixture
def staging_token(environments: dict[str, Any]) -> str:
    _key, token = keys.create_sdk_key(environments["staging"], name="tests")
    return token


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
