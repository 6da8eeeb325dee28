"""The shared conformance cases through the Django path: each case file's ruleset is written
to the models **through the services**, published (models -> snapshot), and every case is
checked against ``flagapp.evaluate`` (snapshot -> in-process cache -> engine)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

import flagapp
from flagapp import services, snapshot
from tests.conformance.cases import load_files
from tests.flagapp.eval_helpers import clean_flag_cache_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

FILES = list(load_files())


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells 1 from 1.0 from True."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b)
    return type(a) is type(b) and a == b


def load_ruleset_into_models(doc: dict[str, Any]) -> Any:
    """Write a format-v1 document as flags, variants, segments and one environment's states,
    using only the services (the admin's and API's write path). Returns the environment."""
    reason = "conformance case"
    env = services.create_environment(
        key=doc["environment"], name=doc["environment"], actor=None, reason=reason
    )
    owner, _ = Group.objects.get_or_create(name="conformance")
    for key, seg in doc.get("segments", {}).items():
        services.create_segment(
            key=key,
            name=key,
            actor=None,
            reason=reason,
            include=seg.get("include", []),
            exclude=seg.get("exclude", []),
            conditions=seg.get("when", []),
        )
    flags = {}
    for key, flag in doc["flags"].items():
        flags[key] = services.create_flag(
            key=key,
            name=key,
            owner=owner,
            kind=flag["kind"],
            flag_type="ops",
            variants=flag["variants"],
            actor=None,
            reason=reason,
        )
    # States after every flag exists: prerequisites name other flags.
    for key, flag in doc["flags"].items():
        services.update_flag_state(
            flags[key],
            env,
            actor=None,
            reason=reason,
            enabled=flag["enabled"],
            fallthrough=flag.get("fallthrough"),
            prerequisites=flag.get("prerequisites", []),
            rules=flag.get("rules", []),
        )
    return env


@pytest.mark.parametrize(("stem", "file_doc"), FILES, ids=[stem for stem, _ in FILES])
@override_settings(FLAGAPP={"FLAG_KEY_PATTERN": r"^.+$", "ENVIRONMENT": "test"})
def test_conformance__orm_snapshot_engine__matches_expected(
    stem: str, file_doc: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    doc = file_doc["ruleset"]
    with django_capture_on_commit_callbacks(execute=True):
        env = load_ruleset_into_models(doc)
        snapshot.publish(env)
    published = snapshot.latest(env.key)
    assert published is not None
    for i, case in enumerate(file_doc["cases"]):
        details = flagapp.evaluate(
            case["flag"], case["default"], case["context"], environment=env.key, kind=case["kind"]
        )
        got = {
            "value": details.value,
            "variant": details.variant,
            "reason": details.reason,
            "errorCode": details.error_code,
        }
        assert got == case["expected"], f"{stem}#{i}:{case['flag']}"
        assert _same(details.value, case["expected"]["value"]), f"{stem}#{i}"
        if details.error_code is None and details.variant is not None:
            assert details.metadata["snapshotVersion"] == published.version
