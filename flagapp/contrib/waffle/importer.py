"""Read django-waffle's Flags, Switches and Samples and turn them into flagapp flags.

The importer only *plans*: it reads waffle's models and builds a flags-as-code document
(docs/flags-as-code.md) which :func:`flagapp.services.code.import_config` applies — the one
write path, so the import gets the same validation, governance, history, single
transaction, dry run and idempotency as ``flagapp_import``. ``manage.py
flagapp_import_waffle`` is the command; the mapping is documented in
docs/migrating-from-waffle.md and summarised here:

* Flag ``everyone=Yes`` → enabled, fallthrough ``on``; ``everyone=No`` → disabled (the kill
  switch: waffle-compatible calls get ``False``), targeting kept for when it is enabled;
  ``everyone=Unknown`` → enabled with one rule per waffle field, in waffle's order:
  testing (``waffle-testing-on``/``-off``), languages, authenticated, staff, superusers,
  users (targeting keys), groups (a segment per Django group), then the fallthrough: a
  sticky rollout of ``percent`` (basis points, bucketed by ``targetingKey``) or ``off``.
* Switch → an ``ops`` boolean flag serving ``on`` or ``off`` to everyone.
* Sample → an ``ops`` *float* flag whose single variant ``percent`` holds the percentage;
  the compatibility layer's ``sample_is_active`` draws a random number per call, as waffle.

This module reads waffle's models and assembles the plan; what each waffle setting becomes
(rules, type, weights, the differences shown before importing) is the pure
:mod:`flagapp.contrib.waffle.mapping`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flagapp.conf import settings as flagapp_settings
from flagapp.models import Flag, FlagKeyTombstone
from flagapp.services.code_format import FORMAT

from .keys import flag_key, sample_key, switch_key
from .mapping import TAG, group_segment_key
from .mapping import description as _description
from .mapping import flag_differences as _flag_differences
from .mapping import flag_rules as _flag_rules
from .mapping import flag_type as _flag_type
from .mapping import percent_text as _percent_text
from .mapping import weights as _weights

__all__ = [
    "PlannedObject",
    "WafflePlan",
    "build_plan",
    "group_segment_key",
    "waffle_installed",
]


def waffle_installed() -> bool:
    """True when the real django-waffle app (its models) is installed in this project."""
    from django.apps import apps

    if not apps.is_installed("waffle"):
        return False
    try:
        apps.get_model("waffle", "Flag")
    except LookupError:  # pragma: no cover - a waffle app without models
        return False
    return True


@dataclass
class PlannedObject:
    """One waffle object and what it becomes (a row of the dry-run table)."""

    waffle_kind: str  # "Flag", "Switch" or "Sample"
    name: str
    key: str
    flag_type: str
    becomes: str
    differences: list[str] = field(default_factory=list)
    exists: bool = False


@dataclass
class WafflePlan:
    objects: list[PlannedObject]
    document: dict[str, Any]
    uses_waffle_context: bool

    def table(self) -> str:
        """The dry-run table: waffle object, flagapp key, type, what it becomes."""
        rows = [("waffle", "flagapp key", "type", "becomes")]
        for o in self.objects:
            status = "" if not o.exists else " (exists)"
            rows.append((f"{o.waffle_kind} {o.name}", o.key + status, o.flag_type, o.becomes))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = []
        for i, r in enumerate(rows):
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
            )
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
        return "\n".join(lines)

    def differences(self) -> list[str]:
        return [
            f"{o.waffle_kind} {o.name} → {o.key}: {d}" for o in self.objects for d in o.differences
        ]


def _owner_name(flag: Any) -> str:
    return flag.owner.name if flag.owner_id else ""


def _states(
    environments: Sequence[str],
    fallthrough: dict[str, Any],
    rules: Sequence[dict[str, Any]] = (),
    *,
    enabled: bool = True,
) -> dict[str, Any]:
    """The same state, with no prerequisites, in every environment imported into."""
    return {
        env: {
            "enabled": enabled,
            "fallthrough": fallthrough,
            "prerequisites": [],
            "rules": list(rules),
        }
        for env in environments
    }


def build_plan(
    *,
    owner: str,
    environments: Sequence[str],
    expires_on: dt.date,
    context_builder_ok: bool,
) -> WafflePlan:
    """Read every waffle Flag, Switch and Sample and plan the flags-as-code document that
    imports them into ``environments``. Flags that already exist in flagapp keep their
    owner, type, risk, expiry and tags (flagapp manages those after the first import);
    their name, description and states follow waffle again."""
    from waffle import get_waffle_flag_model, get_waffle_sample_model, get_waffle_switch_model

    flag_model = get_waffle_flag_model()
    switch_model = get_waffle_switch_model()
    sample_model = get_waffle_sample_model()

    objects: list[PlannedObject] = []
    flags_doc: dict[str, Any] = {}
    segments: dict[str, Any] = {}
    uses_ctx = False

    keys_seen: dict[str, str] = {}

    def claim(key: str, label: str) -> None:
        if key in keys_seen:
            raise ValueError(f"{label} and {keys_seen[key]} map to the same flagapp key {key!r}")
        keys_seen[key] = label

    flag_qs = flag_model.objects.all().order_by("name")
    switches = list(switch_model.objects.all().order_by("name"))
    samples = list(sample_model.objects.all().order_by("name"))
    has_users = hasattr(flag_model, "users")
    has_groups = hasattr(flag_model, "groups")
    if has_users:
        flag_qs = flag_qs.prefetch_related("users")
    if has_groups:
        flag_qs = flag_qs.prefetch_related("groups")
    waffle_flags = list(flag_qs)
    all_keys = (
        [flag_key(f.name) for f in waffle_flags]
        + [switch_key(s.name) for s in switches]
        + [sample_key(s.name) for s in samples]
    )
    existing = {f.key: f for f in Flag.objects.filter(key__in=all_keys).select_related("owner")}

    def spec_for(
        key: str,
        name: str,
        kind: str,
        flag_type: str,
        description: str,
        variants: list[dict[str, Any]],
    ) -> dict[str, Any]:
        current = existing.get(key)
        if current is not None:
            return {
                "name": name[:200],
                "description": description,
                "kind": kind,
                "type": current.flag_type,
                "owner": _owner_name(current),
                "risk": current.risk,
                "tags": list(current.tags or []),
            }
        spec: dict[str, Any] = {
            "name": name[:200],
            "description": description,
            "kind": kind,
            "type": flag_type,
            "owner": owner,
            "risk": "low",
            "tags": [TAG],
            "variants": variants,
        }
        if flag_type in flagapp_settings.EXPIRY_REQUIRED_TYPES:
            spec["expires_on"] = expires_on.isoformat()
        return spec

    bool_variants = [
        {"key": "on", "value": True, "description": ""},
        {"key": "off", "value": False, "description": ""},
    ]

    for wf in waffle_flags:
        key = flag_key(wf.name)
        claim(key, f"Flag {wf.name!r}")
        user_keys = sorted({str(u.pk) for u in wf.users.all()}) if has_users else []
        group_names = sorted({g.name for g in wf.groups.all()}) if has_groups else []
        for g in group_names:
            segments[group_segment_key(g)] = {
                "name": f"Django group {g}"[:200],
                "description": (
                    f"Members of the Django auth group {g!r} (context attribute 'groups'); "
                    "created by flagapp_import_waffle."
                ),
                "include": [],
                "exclude": [],
                "conditions": [{"attr": "groups", "op": "contains", "values": [g]}],
            }
        rules = _flag_rules(wf, group_names, user_keys)
        if wf.everyone is True:
            rules = [r for r in rules if not r["id"].startswith("waffle-testing-")]
            fallthrough: dict[str, Any] = {"variant": "on"}
            becomes = "on for everyone"
        elif wf.percent and wf.percent > 0:
            fallthrough = {"rollout": {"weights": _weights(wf.percent)}}
            becomes = f"{_percent_text(wf.percent)}% sticky rollout"
        else:
            fallthrough = {"variant": "off"}
            becomes = "off"
        if wf.everyone is None and rules:
            becomes = (
                ", ".join(r["id"].removeprefix("waffle-") for r in rules) + " → on; else " + becomes
            )
        if wf.everyone is False:
            becomes = "disabled (off for everyone)" + (
                f"; targeting kept: {', '.join(r['id'].removeprefix('waffle-') for r in rules)}"
                if rules
                else ""
            )
        if any(r["id"] in ("waffle-languages", "waffle-testing-on") for r in rules):
            uses_ctx = True
        ftype = _flag_type(wf)
        diffs = _flag_differences(wf, user_keys, group_names)
        spec = spec_for(key, wf.name, "boolean", ftype, _description("Flag", wf), bool_variants)
        spec["environments"] = _states(
            environments, fallthrough, rules, enabled=wf.everyone is not False
        )
        flags_doc[key] = spec
        objects.append(
            PlannedObject("Flag", wf.name, key, spec["type"], becomes, diffs, key in existing)
        )

    for sw in switches:
        key = switch_key(sw.name)
        claim(key, f"Switch {sw.name!r}")
        spec = spec_for(key, sw.name, "boolean", "ops", _description("Switch", sw), bool_variants)
        spec["environments"] = _states(environments, {"variant": "on" if sw.active else "off"})
        flags_doc[key] = spec
        objects.append(
            PlannedObject(
                "Switch",
                sw.name,
                key,
                spec["type"],
                "on for everyone" if sw.active else "off for everyone",
                [],
                key in existing,
            )
        )

    for sa in samples:
        key = sample_key(sa.name)
        claim(key, f"Sample {sa.name!r}")
        pct = float(sa.percent)
        variants = [
            {
                "key": "percent",
                "value": pct,
                "description": "share of calls for which sample_is_active() is true",
            }
        ]
        spec = spec_for(key, sa.name, "float", "ops", _description("Sample", sa), variants)
        if key in existing:
            spec["variants"] = variants  # the percentage is the variant's value: keep it synced
        spec["environments"] = _states(environments, {"variant": "percent"})
        flags_doc[key] = spec
        objects.append(
            PlannedObject(
                "Sample",
                sa.name,
                key,
                spec["type"],
                f"float flag = {_percent_text(Decimal(sa.percent))} (percent of calls)",
                [
                    "a sample is random per call, not per user: the flag holds the percentage "
                    "and waffle-compatible sample_is_active() draws the random number as waffle "
                    "does; flagapp-native code reads the value with get_value(None, key, 0.0)"
                ],
                key in existing,
            )
        )

    # A flag deleted in flagapp stays deleted (keys are never reused); one archived there
    # stays archived with its states as they are (re-running the import must not undo it).
    deleted = set(FlagKeyTombstone.objects.filter(key__in=all_keys).values_list("key", flat=True))
    for o in objects:
        if o.key in deleted:
            del flags_doc[o.key]
            o.becomes = "skipped: deleted in flagapp (a key is never reused)"
            o.differences = []
        elif o.key in existing and existing[o.key].archived:
            flags_doc[o.key]["archived"] = True
            o.becomes = "archived in flagapp: left as it is"
            o.differences = []
    if uses_ctx and not context_builder_ok:
        for o in objects:
            if any("waffle context builder" in d for d in o.differences):
                o.differences.append(
                    "FLAGAPP['CONTEXT_BUILDER'] is not flagapp.contrib.waffle.context."
                    "waffle_context: until it is, these rules never match"
                )
    document: dict[str, Any] = {"flagapp": FORMAT, "segments": segments, "flags": flags_doc}
    return WafflePlan(objects=objects, document=document, uses_waffle_context=uses_ctx)
