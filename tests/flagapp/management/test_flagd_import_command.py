"""``flagapp_import --format flagd``: flagd definitions into one environment, or a refusal.

Why: the command is what users run; it must write through the services (history with the
reason, publishing), be idempotent, give back exactly what ``flagapp_export --format flagd``
wrote (export -> import -> export identical), and refuse an inexpressible file with the flag
and JSON path while writing nothing.
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

from flagapp import services
from flagapp.models import Flag, FlagState, Segment
from flagapp.publishing import latest
from openfeature_provider.interop.flagd import export_flagd
from tests.interop.test_flagd_export import FLAGS, SEGMENTS, VALIDATOR, _doc

pytestmark = pytest.mark.django_db(transaction=True)

#: The exporter's test flags under keys the default FLAG_KEY_PATTERN accepts (team.purpose).
KEYED = {f"x.{key}": flag for key, flag in FLAGS.items()}


@pytest.fixture
def envs() -> None:
    Group.objects.get_or_create(name="payments")
    services.create_environment(key="production", name="Production", actor=None, reason="t")
    services.create_environment(key="staging", name="Staging", actor=None, reason="t")


def _write(tmp_path: Path, doc: Any, name: str = "flags.flagd.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def _export(env: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("flagapp_export", format="flagd", environments=[env], stdout=out)
    exported: dict[str, Any] = json.loads(out.getvalue())
    VALIDATOR.validate(exported)
    return exported


def _import(path: str, env: str | None = "production", **options: Any) -> str:
    out = io.StringIO()
    if env is not None:
        options["environments"] = [env]
    call_command("flagapp_import", path, format="flagd", reason="from flagd", stdout=out, **options)
    return out.getvalue()


def test_flagapp_import_flagd__export_import_export__identical(tmp_path: Path, envs: None) -> None:
    source = export_flagd(_doc(KEYED, SEGMENTS))
    _import(_write(tmp_path, source), owner="payments")
    first = _export("production")
    # the definitions are what the file said (metadata aside: owner/type/risk/version added)
    assert {k: {**f, "metadata": {}} for k, f in first["flags"].items()} == {
        k: {**f, "metadata": {}} for k, f in source["flags"].items()
    }
    assert first["$evaluators"] == source["$evaluators"]
    # importing the export again writes nothing and exports byte-identically
    versions = latest("production").version  # type: ignore[union-attr]
    summary = _import(_write(tmp_path, first, "again.json"))
    assert "0 created, 0 changed" in summary
    assert latest("production").version == versions  # type: ignore[union-attr]
    assert json.dumps(_export("production")) == json.dumps(first)
    # into another environment: identical but for which environment it is
    _import(_write(tmp_path, first, "again.json"), env="staging")
    staging = _export("staging")
    assert staging["metadata"]["flagSetId"] == "staging"
    staging["metadata"]["flagSetId"] = "production"
    for key, flag in staging["flags"].items():
        assert flag["metadata"].pop("version") >= 1
        first["flags"][key]["metadata"].pop("version")
    assert json.dumps(staging) == json.dumps(first)


def test_flagapp_import_flagd__services_write__history_reason_and_published(
    tmp_path: Path, envs: None
) -> None:
    _import(_write(tmp_path, export_flagd(_doc(KEYED, SEGMENTS))), owner="payments")
    state = FlagState.objects.get(flag__key="x.split.3way", environment__key="production")
    assert state.enabled and state.fallthrough["rollout"]["hash"] == "flagd-cbor"
    assert Flag.objects.get(key="x.semver").kind == "float"
    assert set(Segment.objects.values_list("key", flat=True)) == {"beta", "staff"}
    assert state.history.filter(history_change_reason="from flagd").exists()  # type: ignore[attr-defined]
    snapshot = latest("production")
    assert snapshot is not None and "x.split.3way" in snapshot.data["flags"]


def test_flagapp_import_flagd__inexpressible__refused_naming_flag_path_nothing_written(
    tmp_path: Path, envs: None
) -> None:
    defs = export_flagd(_doc(KEYED, SEGMENTS))
    defs["flags"]["zz.bad"] = {
        "state": "ENABLED",
        "variants": {"a": "x", "b": "y"},
        "defaultVariant": "a",
        "targeting": {"if": [{"<": [{"var": "n"}, 3]}, "b"]},
    }
    with pytest.raises(CommandError) as err:
        _import(_write(tmp_path, defs), owner="payments")
    assert 'flag \'zz.bad\' at $.flags["zz.bad"].targeting.if[0]["<"]' in str(err.value)
    assert "nothing was written" in str(err.value)
    assert not Flag.objects.exists() and not Segment.objects.exists()


def test_flagapp_import_flagd__new_flag_without_owner__refused_naming_flag(
    tmp_path: Path, envs: None
) -> None:
    defs = {
        "flags": {"t.f": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}}
    }
    with pytest.raises(CommandError, match=r"flag t.f: a new flag needs an owner"):
        _import(_write(tmp_path, defs))
    assert not Flag.objects.exists()


def test_flagapp_import_flagd__no_environment__flag_set_id_or_command_error(
    tmp_path: Path, envs: None
) -> None:
    defs: dict[str, Any] = {
        "flags": {"t.f": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}}
    }
    with pytest.raises(CommandError, match="give --environment"):
        _import(_write(tmp_path, defs), env=None, owner="payments")
    defs["metadata"] = {"flagSetId": "staging"}
    _import(_write(tmp_path, defs), env=None, owner="payments")
    assert FlagState.objects.get(flag__key="t.f", environment__key="staging").enabled
