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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .context import testing_attr
from .keys import flag_key, sample_key, switch_key

__all__ = [
    "PlannedObject",
    "WafflePlan",
    "build_plan",
    "group_segment_key",
    "waffle_installed",
]

#: Tag put on every imported flag (filter on it in the admin, the API or flagapp_export).
TAG = "waffle"
#: Rollout weights are basis points: waffle's percent has one decimal (12.5 % → 1250).
TOTAL_WEIGHT = 10_000


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


def group_segment_key(group_name: str) -> str:
    """The segment holding the members of Django group ``group_name``."""
    if len(group_name) <= 80 and re.fullmatch(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?", group_name):
        return f"waffle-group-{group_name}"
    slug = re.sub(r"[^a-z0-9]+", "-", group_name.lower()).strip("-")[:60].strip("-") or "x"
    digest = hashlib.sha256(group_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"waffle-group-{slug}-{digest}"


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


def _percent_text(p: Decimal) -> str:
    return f"{p.normalize():f}"


def _weights(percent: Decimal) -> list[dict[str, Any]]:
    on = int((percent * TOTAL_WEIGHT / 100).to_integral_value())
    on = max(0, min(TOTAL_WEIGHT, on))
    return [{"variant": "on", "weight": on}, {"variant": "off", "weight": TOTAL_WEIGHT - on}]


def _description(kind: str, obj: Any) -> str:
    created = getattr(obj, "created", None)
    when = f", created there on {created.date().isoformat()}" if created else ""
    text = f"Imported from django-waffle {kind} {obj.name!r}{when}."
    note = (getattr(obj, "note", "") or "").strip()
    if note:
        text += f"\n\nwaffle note: {note}"
    return text


def _flag_rules(flag: Any, group_names: Sequence[str], user_keys: Sequence[str]) -> list[Any]:
    rules: list[dict[str, Any]] = []
    if flag.testing and flag.everyone is not True:
        attr = testing_attr(flag.name)
        for value, variant in ((True, "on"), (False, "off")):
            rules.append(
                {
                    "id": f"waffle-testing-{variant}",
                    "description": f"waffle testing mode: dwft_{flag.name} = {variant}",
                    "when": [{"attr": attr, "op": "eq", "values": [value]}],
                    "serve": {"variant": variant},
                }
            )
    if flag.languages:
        langs: list[str] = []
        for lang in (part.strip() for part in flag.languages.split(",")):
            if lang not in langs:
                langs.append(lang)
        rules.append(
            {
                "id": "waffle-languages",
                "description": "waffle languages (request.LANGUAGE_CODE)",
                "when": [{"attr": "language", "op": "in", "values": langs}],
                "serve": {"variant": "on"},
            }
        )
    for fld, attr in (
        ("authenticated", "authenticated"),
        ("staff", "is_staff"),
        ("superusers", "is_superuser"),
    ):
        if getattr(flag, fld):
            rules.append(
                {
                    "id": f"waffle-{fld}",
                    "description": f"waffle {fld}",
                    "when": [{"attr": attr, "op": "eq", "values": [True]}],
                    "serve": {"variant": "on"},
                }
            )
    if user_keys:
        rules.append(
            {
                "id": "waffle-users",
                "description": "waffle users (signed-in users by primary key)",
                "when": [
                    {"attr": "authenticated", "op": "eq", "values": [True]},
                    {"attr": "targetingKey", "op": "in", "values": list(user_keys)},
                ],
                "serve": {"variant": "on"},
            }
        )
    if group_names:
        rules.append(
            {
                "id": "waffle-groups",
                "description": "waffle groups",
                "when": [
                    {
                        "op": "in_segment",
                        "values": sorted(group_segment_key(g) for g in group_names),
                    }
                ],
                "serve": {"variant": "on"},
            }
        )
    return rules


def _flag_type(flag: Any) -> str:
    """Documented rule: a Flag split by ``percent`` without rollout mode is an A/B test
    (``experiment``); every other Flag is a ``release``."""
    if flag.everyone is None and flag.percent and flag.percent > 0 and not flag.rollout:
        return "experiment"
    return "release"


def _flag_differences(flag: Any, user_keys: Sequence[str], group_names: Sequence[str]) -> list[str]:
    d: list[str] = []
    p = flag.percent
    targeted = bool(
        flag.languages
        or flag.authenticated
        or flag.staff
        or flag.superusers
        or user_keys
        or group_names
        or flag.testing
        or (p and p > 0)
    )
    if flag.everyone is True and targeted:
        d.append(
            "everyone=Yes overrides the other settings: they are kept as rules but the "
            "fallthrough 'on' serves everyone"
            + (" (testing-mode rules are left out)" if flag.testing else "")
            + (f"; percent {_percent_text(p)} is not imported" if p and p > 0 else "")
        )
    if flag.everyone is False:
        d.append(
            "everyone=No becomes a disabled flag (kill switch): waffle-compatible calls "
            "answer False, flagapp callers get their own default; the targeting is kept and "
            "applies once the flag is enabled"
        )
    if p and p > 0 and flag.everyone is None:
        pt = _percent_text(p)
        flip = float(p) * (100 - float(p)) * 2 / 100
        d.append(
            f"percent {pt}: waffle draws at random per browser and remembers it in cookie "
            f"dwf_{flag.name}; flagapp picks {pt}% of users by hashing their targetingKey "
            "(user pk, or session key) — sticky, which is better: the same answer in every "
            "browser and on every device, no cookie, and raising it only adds users. "
            f"Existing dwf_ cookies are not read: about {flip:.1f}% of visitors see the other "
            "answer once. Anonymous requests without a session get False (waffle rolled)."
        )
    if flag.rollout:
        d.append(
            "rollout mode: waffle re-rolls visitors who got 'off' every browser session so the "
            "share creeps up; flagapp's split is fixed — raise the percentage to grow it "
            "(nobody already in drops out)"
        )
    if flag.testing:
        d.append(
            "testing mode: ?dwft_<name>=1|0, the DWFT-<name> header and the dwft_ cookie "
            "work through context attribute "
            f"{testing_attr(flag.name)!r} (needs the waffle context builder); names are "
            "matched case-insensitively with '_' and '-' alike; the cookie is set only by "
            "flagapp.contrib.waffle's middleware"
        )
    if flag.languages:
        d.append(
            "languages: read from context attribute 'language' (needs the waffle context builder)"
        )
    if group_names:
        d.append(
            "groups: matched by group name (context attribute 'groups'); renaming a Django "
            "group breaks the match"
        )
    if flag.superusers and flag.everyone is None:
        d.append("superusers=Yes (waffle's default) is kept: superusers always get the flag")
    return d


def _owner_name(flag: Any) -> str:
    return flag.owner.name if flag.owner_id else ""


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

    from flagapp.models import Flag

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
        from flagapp.conf import settings as flagapp_settings

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
        spec["environments"] = {
            env: {
                "enabled": wf.everyone is not False,
                "fallthrough": fallthrough,
                "prerequisites": [],
                "rules": rules,
            }
            for env in environments
        }
        flags_doc[key] = spec
        objects.append(
            PlannedObject("Flag", wf.name, key, spec["type"], becomes, diffs, key in existing)
        )

    for sw in switches:
        key = switch_key(sw.name)
        claim(key, f"Switch {sw.name!r}")
        spec = spec_for(key, sw.name, "boolean", "ops", _description("Switch", sw), bool_variants)
        spec["environments"] = {
            env: {
                "enabled": True,
                "fallthrough": {"variant": "on" if sw.active else "off"},
                "prerequisites": [],
                "rules": [],
            }
            for env in environments
        }
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
        spec["environments"] = {
            env: {
                "enabled": True,
                "fallthrough": {"variant": "percent"},
                "prerequisites": [],
                "rules": [],
            }
            for env in environments
        }
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
    from flagapp.models import FlagKeyTombstone

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
    document: dict[str, Any] = {"flagapp": 1, "segments": segments, "flags": flags_doc}
    return WafflePlan(objects=objects, document=document, uses_waffle_context=uses_ctx)
