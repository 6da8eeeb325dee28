"""Shared fixtures and builders for the in-process evaluation tests (not a test module).

Import the fixtures into a test module with
``from .eval_helpers import FIXTURES, ...  # noqa: F401`` style names:
``clean_flag_cache_fixture`` (autouse) and ``install_flags_fixture``.

Rulesets are built as format-v1 documents and installed straight into the evaluation cache
where a test is about evaluation itself; tests of the whole path (services -> snapshot ->
cache -> engine) publish through ``flagapp.snapshot`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from django.core.cache import caches

from flagapp import evaluation, sampling
from openfeature_provider.engine import Ruleset, parse_ruleset


def flag_doc(
    kind: str = "boolean",
    variants: Mapping[str, Any] | None = None,
    *,
    enabled: bool = True,
    fallthrough: Any = "on",
    rules: list[dict[str, Any]] | None = None,
    prerequisites: list[dict[str, Any]] | None = None,
    metadata_version: int = 1,
) -> dict[str, Any]:
    """One flag of a ruleset document (fallthrough: a variant key, a serve dict, or None).

    Also used by ``sdk_helpers`` (one builder, so the two suites cannot drift apart on
    the document format); ``metadata_version`` lets it keep its own metadata version.
    """
    if variants is None:
        variants = {"on": True, "off": False}
    if isinstance(fallthrough, str):
        fallthrough = {"variant": fallthrough}
    doc: dict[str, Any] = {
        "kind": kind,
        "enabled": enabled,
        "variants": dict(variants),
        "fallthrough": fallthrough,
        "metadata": {"owner": "tests", "type": "release", "version": metadata_version},
    }
    if rules:
        doc["rules"] = rules
    if prerequisites:
        doc["prerequisites"] = prerequisites
    return doc


def ruleset_doc(
    flags: Mapping[str, Any],
    *,
    segments: Mapping[str, Any] | None = None,
    environment: str = "production",
    version: int = 1,
) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": environment,
        "version": version,
        "etag": f"sha256:test-{environment}-{version}",
        "flags": dict(flags),
        "segments": dict(segments or {}),
    }


Installer = Callable[..., Ruleset]


@pytest.fixture(autouse=True, name="clean_flag_cache")
def clean_flag_cache_fixture() -> Iterator[None]:
    """Every test starts cold: no in-process ruleset, an empty shared cache, no overrides."""
    evaluation.clear_cache()
    caches["default"].clear()
    sampling.reset()
    yield
    evaluation.clear_cache()
    caches["default"].clear()
    evaluation.clear_overrides()


@pytest.fixture(name="install_flags")
def install_flags_fixture() -> Installer:
    """``install_flags({"a.b": flag_doc()}, version=1, environment="production")``."""

    def install(
        flags: Mapping[str, Any],
        *,
        segments: Mapping[str, Any] | None = None,
        environment: str = "production",
        version: int = 1,
    ) -> Ruleset:
        ruleset = parse_ruleset(
            ruleset_doc(flags, segments=segments, environment=environment, version=version)
        )
        evaluation.install(environment, ruleset)
        return ruleset

    return install


def make_environment(key: str = "production", **kwargs: Any) -> Any:
    from flagapp.models import Environment

    env, _ = Environment.objects.get_or_create(key=key, defaults={"name": key.title(), **kwargs})
    return env


def make_flag(
    key: str,
    kind: str = "boolean",
    variants: Mapping[str, Any] | None = None,
    *,
    states: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """A flag written straight to the ORM (the write path's own rules are the services'
    tests' business; these tests are about what evaluation does with a published snapshot).

    ``states`` maps an environment key to FlagState fields (``enabled``, ``fallthrough``...)
    plus ``rules`` in the ruleset-format shape.
    """
    from django.contrib.auth.models import Group

    from flagapp.models import Flag, FlagState, TargetingRule, Variant

    owner, _ = Group.objects.get_or_create(name="tests")
    flag = Flag.objects.create(key=key, name=key, kind=kind, flag_type="ops", owner=owner)
    for order, (vkey, value) in enumerate((variants or {"on": True, "off": False}).items()):
        Variant.objects.create(flag=flag, key=vkey, value=value, order=order)
    for env_key, fields in (
        states or {"production": {"enabled": True, "fallthrough": {"variant": "on"}}}
    ).items():
        fields = dict(fields)
        rules = fields.pop("rules", [])
        state = FlagState.objects.create(flag=flag, environment=make_environment(env_key), **fields)
        for order, rule in enumerate(rules):
            TargetingRule.objects.create(
                state=state,
                order=order,
                rule_id=rule["id"],
                conditions=rule["when"],
                serve=rule["serve"],
            )
    return flag


def publish(env_key: str = "production") -> Any:
    """Publish and run the on_commit announcement (cache keys + signal) right away."""
    from django.test import TestCase

    from flagapp import snapshot

    with TestCase.captureOnCommitCallbacks(execute=True):
        snap = snapshot.publish(make_environment(env_key))
    return snap
