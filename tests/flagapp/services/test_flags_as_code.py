"""Flags as code: flagapp_export / flagapp_import (services.code)."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from flagapp import services
from flagapp.exceptions import FlagValidationError
from flagapp.models import (
    Environment,
    Flag,
    FlagState,
    Segment,
    Snapshot,
    TargetingRule,
    Variant,
)
from flagapp.services.code import export_config, import_config

pytestmark = pytest.mark.django_db


@dataclass
class ApprovedRequest:
    flag_id: int | None = None
    environment_id: int | None = None
    is_approved: bool = True


def document(expires: str) -> dict[str, Any]:
    return {
        "flagapp": 1,
        "environments": [
            {"key": "development", "name": "Development", "protected": False, "order": 0},
            {"key": "staging", "name": "Staging", "protected": False, "order": 1},
            {"key": "production", "name": "Production", "protected": False, "order": 2},
        ],
        "segments": {
            "beta": {
                "name": "Beta",
                "description": "",
                "include": ["u1"],
                "exclude": [],
                "conditions": [{"op": "in_segment", "values": ["staff"]}],
            },
            "staff": {
                "name": "Staff",
                "description": "",
                "include": [],
                "exclude": [],
                "conditions": [{"attr": "email", "op": "ends_with", "values": ["@corp.example"]}],
            },
        },
        "flags": {
            "checkout.new-flow": {
                "name": "New checkout",
                "description": "",
                "kind": "boolean",
                "type": "release",
                "owner": "payments",
                "risk": "low",
                "expires_on": expires,
                "tags": ["web"],
                "archived": False,
                "variants": [
                    {"key": "on", "value": True, "description": ""},
                    {"key": "off", "value": False, "description": ""},
                ],
                "environments": {
                    "staging": {
                        "enabled": True,
                        "fallthrough": {"variant": "off"},
                        "prerequisites": [{"flag": "payments.v2", "variants": ["on"]}],
                        "rules": [
                            {
                                "id": "beta",
                                "description": "beta users",
                                "when": [{"op": "in_segment", "values": ["beta"]}],
                                "serve": {"variant": "on"},
                            }
                        ],
                    },
                    "production": {
                        "enabled": False,
                        "fallthrough": {"variant": "off"},
                        "prerequisites": [],
                        "rules": [],
                    },
                },
            },
            "payments.v2": {
                "name": "Payments v2",
                "description": "",
                "kind": "boolean",
                "type": "ops",
                "owner": "payments",
                "risk": "low",
                "expires_on": None,
                "tags": [],
                "archived": False,
                "variants": [
                    {"key": "on", "value": True, "description": ""},
                    {"key": "off", "value": False, "description": ""},
                ],
                "environments": {
                    "staging": {
                        "enabled": True,
                        "fallthrough": {"variant": "on"},
                        "prerequisites": [],
                        "rules": [],
                    },
                },
            },
        },
    }


@pytest.fixture
def doc(owner_group: Any, envs: dict[str, Environment]) -> dict[str, Any]:
    import datetime as dt

    return document((dt.date.today() + dt.timedelta(days=60)).isoformat())


def counts() -> dict[str, int]:
    models = (Flag, Variant, FlagState, TargetingRule, Segment)
    out = {m.__name__: m.objects.count() for m in models}
    out.update({f"h{m.__name__}": m.history.count() for m in models})  # type: ignore[attr-defined]
    return out


def test_import__new_configuration__created_and_round_trips_through_export(
    doc: dict[str, Any], committed: Any
) -> None:
    with committed():
        result = import_config(doc, actor=None, reason="bootstrap from git")
    assert "flag checkout.new-flow" in result.created and "segment beta" in result.created
    exported = export_config()
    for key, flag in doc["flags"].items():
        for env_key, state in flag["environments"].items():
            assert exported["flags"][key]["environments"][env_key] == state
        assert {k: v for k, v in exported["flags"][key].items() if k != "environments"} == {
            k: v for k, v in flag.items() if k != "environments"
        }
    assert exported["segments"] == doc["segments"]
    prod = Snapshot.objects.filter(environment__key="staging").order_by("-version").first()
    assert prod is not None and "checkout.new-flow" in prod.data["flags"]
    assert Flag.history.filter(history_change_reason="bootstrap from git").count() == 2


def test_import__same_document_twice__second_changes_nothing(
    doc: dict[str, Any], committed: Any
) -> None:
    with committed():
        import_config(doc, actor=None, reason="first")
    before = counts()
    versions = dict(Snapshot.objects.values_list("environment__key", "version"))
    with committed():
        result = import_config(copy.deepcopy(doc), actor=None, reason="again")
    assert result.created == [] and result.changed == []
    assert counts() == before
    assert dict(Snapshot.objects.values_list("environment__key", "version")) == versions


def test_import__shape_errors__all_reported_nothing_written(doc: dict[str, Any]) -> None:
    doc["flags"]["checkout.new-flow"]["colour"] = "red"
    del doc["flags"]["payments.v2"]["owner"]
    doc["segments"]["beta"]["include"] = "u1"
    with pytest.raises(FlagValidationError) as info:
        import_config(doc, actor=None, reason="x")
    text = " ".join(info.value.messages)
    assert "unknown key(s) colour" in text and "missing 'owner'" in text
    assert "include: expected a list" in text
    assert not Flag.objects.exists() and not Segment.objects.exists()


def test_import__invalid_rule_in_last_flag__whole_import_rolled_back(
    doc: dict[str, Any],
) -> None:
    doc["flags"]["payments.v2"]["environments"]["staging"]["rules"] = [
        {
            "id": "x",
            "when": [{"attr": "plan", "op": "like", "values": ["x"]}],
            "serve": {"variant": "on"},
        }
    ]
    with pytest.raises(FlagValidationError) as info:
        import_config(doc, actor=None, reason="x")
    assert "flag payments.v2 in staging" in info.value.message_dict
    assert "unknown operator 'like'" in " ".join(info.value.messages)
    assert not Flag.objects.exists() and not Segment.objects.exists()


def test_import__unknown_environment__refused_unless_created(
    owner_group: Any, doc: dict[str, Any]
) -> None:
    doc["flags"]["payments.v2"]["environments"]["qa"] = {"enabled": True}
    with pytest.raises(FlagValidationError) as info:
        import_config(doc, actor=None, reason="x")
    assert "environment qa" in info.value.message_dict
    import_config(doc, actor=None, reason="x", create_environments=True)
    assert FlagState.objects.get(flag__key="payments.v2", environment__key="qa").enabled


def test_import__promote_staging_to_production__states_copied(
    doc: dict[str, Any], envs: dict[str, Environment]
) -> None:
    import_config(doc, actor=None, reason="bootstrap")
    result = import_config(
        doc, actor=None, reason="promote", from_environment="staging", to_environment="production"
    )
    assert sorted(result.changed) == [
        "state checkout.new-flow@production",
        "state payments.v2@production",
    ]
    prod = FlagState.objects.get(flag__key="checkout.new-flow", environment__key="production")
    assert prod.enabled and prod.prerequisites == [{"flag": "payments.v2", "variants": ["on"]}]
    assert list(prod.rules.values_list("rule_id", flat=True)) == ["beta"]
    assert prod.history.first().history_change_reason == "promote"


def test_import__protected_target__needs_change_request(
    doc: dict[str, Any], envs: dict[str, Environment]
) -> None:
    import_config(doc, actor=None, reason="bootstrap")
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    with pytest.raises(FlagValidationError) as info:
        import_config(
            doc,
            actor=None,
            reason="promote",
            from_environment="staging",
            to_environment="production",
        )
    assert "approved change request" in " ".join(info.value.messages)
    assert not FlagState.objects.get(flag__key="payments.v2", environment__key="production").enabled
    import_config(
        doc,
        actor=None,
        reason="promote",
        from_environment="staging",
        to_environment="production",
        change_request=ApprovedRequest(environment_id=envs["production"].pk),
    )
    assert FlagState.objects.get(flag__key="payments.v2", environment__key="production").enabled


def test_import__variant_removed_while_states_move_off_it__applied(
    doc: dict[str, Any],
) -> None:
    import_config(doc, actor=None, reason="bootstrap")
    flag = doc["flags"]["payments.v2"]
    flag["variants"] = [{"key": "on", "value": True, "description": ""}]
    flag["environments"]["staging"]["fallthrough"] = {"variant": "on"}
    for env in ("development", "production"):
        flag["environments"][env] = {"enabled": False, "fallthrough": None}
    import_config(doc, actor=None, reason="drop off")
    assert list(Variant.objects.filter(flag__key="payments.v2").values_list("key", flat=True)) == [
        "on"
    ]


def test_import__dry_run__reports_and_writes_nothing(doc: dict[str, Any]) -> None:
    result = import_config(doc, actor=None, reason="x", dry_run=True)
    assert "flag payments.v2" in result.created and "would be" in result.summary()
    assert not Flag.objects.exists()


def test_export__environment_option__only_those_states(doc: dict[str, Any]) -> None:
    import_config(doc, actor=None, reason="x")
    exported = export_config(["staging"])
    assert [e["key"] for e in exported["environments"]] == ["staging"]
    assert set(exported["flags"]["checkout.new-flow"]["environments"]) == {"staging"}
    with pytest.raises(FlagValidationError):
        export_config(["nowhere"])


def test_commands__export_then_import_file__idempotent_and_reason_required(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(doc))
    out = io.StringIO()
    call_command("flagapp_import", str(source), reason="from file", stdout=out)
    assert "created  flag checkout.new-flow" in out.getvalue()
    target = tmp_path / "out.json"
    call_command("flagapp_export", output=str(target), stderr=io.StringIO())
    exported = json.loads(target.read_text())
    stdout = io.StringIO()
    call_command("flagapp_export", stdout=stdout)
    assert json.loads(stdout.getvalue()) == exported
    again = io.StringIO()
    call_command("flagapp_import", str(target), reason="again", stdout=again)
    assert "0 created, 0 changed" in again.getvalue()
    with pytest.raises(CommandError):
        call_command("flagapp_import", str(target))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("flagapp_import", str(bad), reason="x")
