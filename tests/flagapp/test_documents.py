"""flagapp.documents is the one ORM -> format-v1 mapper: every consumer that shows or
validates a flag state (compiled snapshot, flags-as-code export, API, rollout controller,
change-request diff) describes it with the same projection, so they cannot drift apart."""

from __future__ import annotations

from typing import Any

import pytest

from flagapp import documents, services, snapshot
from flagapp.api.serializers import FlagStateSerializer
from flagapp.models import Environment, FlagState
from flagapp.rollouts.controller import _rules_of as controller_rules
from flagapp.services.code import export_config
from openfeature_provider.engine import parse_ruleset

pytestmark = pytest.mark.django_db

RULES = [
    {
        "id": "b",
        "description": "second id, first in order",
        "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
        "serve": {"variant": "on"},
    },
    {
        "id": "a",
        "when": [{"attr": "country", "op": "in", "values": ["FR"]}],
        "serve": {"variant": "off"},
    },
]


def _state(make_flag: Any, envs: dict[str, Environment]) -> FlagState:
    flag = make_flag()
    services.update_flag_state(
        flag, envs["production"], actor=None, reason="x", enabled=True, rules=RULES
    )
    return FlagState.objects.get(flag=flag, environment=envs["production"])


def test_rules_as_dicts__every_consumer__same_projection_in_evaluation_order(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    state = _state(make_flag, envs)
    expected = documents.rules_as_dicts(state)
    assert [r["id"] for r in expected] == ["b", "a"]
    assert expected[0]["description"] == "second id, first in order"
    assert controller_rules(state) == expected
    assert FlagStateSerializer(state).data["rules"] == expected
    exported = export_config()["flags"][state.flag.key]["environments"]["production"]
    assert exported == documents.state_dict(state)
    compiled = snapshot.compile_environment(envs["production"])["flags"][state.flag.key]
    assert [(r["id"], r["when"], r["serve"]) for r in compiled["rules"]] == [
        (r["id"], r["when"], r["serve"]) for r in expected
    ]


def test_envelope__etag_none__content_hash_and_engine_accepts(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    state = _state(make_flag, envs)
    doc = documents.compile_environment(envs["production"], version=4)
    again = documents.envelope(
        environment="production", flags=doc["flags"], segments=doc["segments"], version=4, etag=None
    )
    assert again == doc
    assert doc["format"] == documents.FORMAT_VERSION == snapshot.FORMAT_VERSION
    assert parse_ruleset(doc).flags[state.flag.key].enabled is True


def test_envelope__validation_only__empty_etag_and_no_flags() -> None:
    doc = documents.envelope(environment="-")
    assert doc == {
        "format": 1,
        "environment": "-",
        "version": 0,
        "etag": "",
        "flags": {},
        "segments": {},
    }
