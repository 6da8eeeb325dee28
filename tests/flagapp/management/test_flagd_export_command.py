"""``flagapp_export --format flagd``: one environment as flagd definitions, or a refusal.

Why: the command is what users run; it must take the environment's published document
(flagapp.documents, the one ORM->document mapper), keep a rollout's ``hash`` through the
models, and turn an inexpressible flag into a CommandError naming the flag and JSON path.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.interop.test_flagd_export import VALIDATOR

pytestmark = pytest.mark.django_db


def _config(rollout_hash: str | None) -> dict[str, Any]:
    rollout: dict[str, Any] = {
        "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
    }
    if rollout_hash is not None:
        rollout["hash"] = rollout_hash
    return {
        "flagapp": 1,
        "environments": [
            {"key": "production", "name": "Production", "protected": False, "order": 0}
        ],
        "segments": {},
        "flags": {
            "web.new-ui": {
                "name": "New UI",
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
                    "production": {
                        "enabled": True,
                        "fallthrough": {"variant": "off"},
                        "prerequisites": [],
                        "rules": [
                            {
                                "id": "pro",
                                "description": "",
                                "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                                "serve": {"rollout": rollout},
                            }
                        ],
                    }
                },
            }
        },
    }


def _load(tmp_path: Path, rollout_hash: str | None) -> None:
    Group.objects.get_or_create(name="payments")
    source = tmp_path / "in.json"
    source.write_text(json.dumps(_config(rollout_hash)))
    call_command(
        "flagapp_import",
        str(source),
        reason="test",
        create_environments=True,
        stdout=io.StringIO(),
    )


def test_flagapp_export_flagd__cbor_rollout__schema_valid_shorthand(tmp_path: Path) -> None:
    _load(tmp_path, "flagd-cbor")
    out = io.StringIO()
    call_command("flagapp_export", format="flagd", environments=["production"], stdout=out)
    exported = json.loads(out.getvalue())
    VALIDATOR.validate(exported)
    flag = exported["flags"]["web.new-ui"]
    assert flag["defaultVariant"] == "off"
    assert flag["targeting"] == {
        "if": [{"in": [{"var": "plan"}, ["pro"]]}, {"fractional": [["on", 50], ["off", 50]]}]
    }


def test_flagapp_export_flagd__default_hash__refused_under_cbor_exported_legacy(
    tmp_path: Path,
) -> None:
    _load(tmp_path, None)
    with pytest.raises(
        CommandError, match=r"flag 'web.new-ui' at .*rules\[0\]\.serve\.rollout\.hash"
    ):
        call_command("flagapp_export", format="flagd", environments=["production"])
    out = io.StringIO()
    call_command(
        "flagapp_export",
        format="flagd",
        environments=["production"],
        flagd_bucketing="legacy",
        stdout=out,
    )
    rollout = json.loads(out.getvalue())["flags"]["web.new-ui"]["targeting"]["if"][1]
    assert rollout["fractional"][0] == {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}


def test_flagapp_export_flagd__no_or_unknown_environment__command_error(tmp_path: Path) -> None:
    _load(tmp_path, "flagd-cbor")
    with pytest.raises(CommandError, match="one environment"):
        call_command("flagapp_export", format="flagd")
    with pytest.raises(CommandError, match="unknown environment 'nope'"):
        call_command("flagapp_export", format="flagd", environments=["nope"])
