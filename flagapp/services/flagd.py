"""flagd flag definitions into flagapp (docs/interop.md, "flagd import").

Why a translation to the flags-as-code document rather than writes of its own: the services
stay the one write path. ``openfeature_provider.interop.flagd_import`` (pure, no Django) reads
the flagd file exactly or refuses it; this module fills in what a flags-as-code document needs
from the database (the existing flag's name, kind, variant descriptions and rule ids, so that
importing the same file twice changes nothing) and ``import_config`` applies it: one
transaction, the services' validation, governance, history with a reason, and publishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flagapp.exceptions import ConfigImportError
from flagapp.models import Environment, Flag, FlagState, Segment
from flagapp.services.code import FORMAT, ImportResult, import_config
from openfeature_provider.interop.flagd_import import Bucketing, import_flagd, infer_kind

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = ["flagd_to_config", "import_flagd_config"]


def _rule_ids(flag: Flag | None, environment: str, count: int) -> list[str]:
    """Stable ids: the state's current ids by position, then ``flagd-N`` (unused ones)."""
    existing: list[str] = []
    if flag is not None:
        state = (
            FlagState.objects.filter(flag=flag, environment__key=environment)
            .prefetch_related("rules")
            .first()
        )
        if state is not None:
            existing = [r.rule_id for r in sorted(state.rules.all(), key=lambda r: (r.order, r.pk))]
    ids = existing[:count]
    n = 0
    while len(ids) < count:
        n += 1
        candidate = f"flagd-{n}"
        if candidate not in ids and candidate not in existing:
            ids.append(candidate)
    return ids


def flagd_to_config(
    defs: Any,
    *,
    environment: str,
    bucketing: Bucketing = "cbor",
    owner: str | None = None,
    flag_type: str = "ops",
) -> dict[str, Any]:
    """The flags-as-code document (docs/flags-as-code.md) that gives ``environment`` the
    flagd ``defs``. Raises ``FlagdImportError`` (flag and JSON path) for what flagapp cannot
    evaluate identically, ``ConfigImportError`` for a new flag with no owner."""
    imported = import_flagd(defs, bucketing)
    existing = {f.key: f for f in Flag.objects.filter(key__in=list(imported["flags"]))}
    segment_names = dict(
        Segment.objects.filter(key__in=list(imported["segments"])).values_list("key", "name")
    )
    missing: dict[str, list[str]] = {}
    flags: dict[str, Any] = {}
    for key, spec in imported["flags"].items():
        flag = existing.get(key)
        fields: Mapping[str, Any] = spec["fields"]
        descriptions = (
            {v.key: v.description for v in flag.variants.all()} if flag is not None else {}
        )
        kind = flag.kind if flag is not None else infer_kind(spec["variants"])
        entry: dict[str, Any] = {
            "name": flag.name if flag is not None else key,
            "kind": kind,
            "owner": fields.get("owner") or (flag.owner.name if flag is not None else owner),
            "type": fields.get("type") or (flag.flag_type if flag is not None else flag_type),
            "variants": [
                {"key": k, "value": v, "description": descriptions.get(k, "")}
                for k, v in spec["variants"].items()
            ],
        }
        if entry["owner"] is None:
            missing[f"flag {key}"] = [
                "a new flag needs an owner: metadata.owner in the file, or --owner GROUP"
            ]
        if "risk" in fields:
            entry["risk"] = fields["risk"]
        if "expires_on" in fields:
            entry["expires_on"] = fields["expires_on"]
        ids = _rule_ids(flag, environment, len(spec["rules"]))
        entry["environments"] = {
            environment: {
                "enabled": spec["enabled"],
                "fallthrough": spec["fallthrough"],
                "prerequisites": [],
                "rules": [
                    {"id": rule_id, "when": rule["when"], "serve": rule["serve"]}
                    for rule_id, rule in zip(ids, spec["rules"], strict=True)
                ],
            }
        }
        flags[key] = entry
    if missing:
        raise ConfigImportError(missing)
    segments = {
        key: {
            "name": segment_names.get(key, key),
            "include": seg["include"],
            "exclude": seg["exclude"],
            "conditions": seg["when"],
        }
        for key, seg in imported["segments"].items()
    }
    return {"flagapp": FORMAT, "segments": segments, "flags": flags}


def import_flagd_config(
    defs: Any,
    *,
    environment: str,
    actor: Actor,
    reason: str,
    bucketing: Bucketing = "cbor",
    owner: str | None = None,
    flag_type: str = "ops",
    change_request: Approval | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Apply flagd ``defs`` to ``environment`` through ``import_config`` (all or nothing)."""
    if not Environment.objects.filter(key=environment).exists():
        raise ConfigImportError({f"environment {environment}": ["no such environment"]})
    doc = flagd_to_config(
        defs, environment=environment, bucketing=bucketing, owner=owner, flag_type=flag_type
    )
    return import_config(
        doc,
        actor=actor,
        reason=reason,
        environments=[environment],
        change_request=change_request,
        dry_run=dry_run,
    )
