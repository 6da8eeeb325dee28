"""How each django-waffle setting becomes flagapp targeting: pure, no ORM and no settings.

:func:`flagapp.contrib.waffle.importer.build_plan` reads waffle's models and asks this
module what each Flag becomes: its rules (:func:`flag_rules`, in waffle's order: testing,
languages, authenticated, staff, superusers, users, groups), its type (:func:`flag_type`),
the percentage as rollout weights (:func:`weights`), its description, and the differences
in behaviour a person should read before importing (:func:`flag_differences`).
The mapping is documented in docs/migrating-from-waffle.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .context import testing_attr

__all__ = [
    "TAG",
    "TOTAL_WEIGHT",
    "description",
    "flag_differences",
    "flag_rules",
    "flag_type",
    "group_segment_key",
    "percent_text",
    "weights",
]

#: Tag put on every imported flag (filter on it in the admin, the API or flagapp_export).
TAG = "waffle"
#: Rollout weights are basis points: waffle's percent has one decimal (12.5 % → 1250).
TOTAL_WEIGHT = 10_000


def group_segment_key(group_name: str) -> str:
    """The segment holding the members of Django group ``group_name``."""
    if len(group_name) <= 80 and re.fullmatch(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?", group_name):
        return f"waffle-group-{group_name}"
    slug = re.sub(r"[^a-z0-9]+", "-", group_name.lower()).strip("-")[:60].strip("-") or "x"
    digest = hashlib.sha256(group_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"waffle-group-{slug}-{digest}"


def percent_text(p: Decimal) -> str:
    return f"{p.normalize():f}"


def weights(percent: Decimal) -> list[dict[str, Any]]:
    on = int((percent * TOTAL_WEIGHT / 100).to_integral_value())
    on = max(0, min(TOTAL_WEIGHT, on))
    return [{"variant": "on", "weight": on}, {"variant": "off", "weight": TOTAL_WEIGHT - on}]


def description(kind: str, obj: Any) -> str:
    created = getattr(obj, "created", None)
    when = f", created there on {created.date().isoformat()}" if created else ""
    text = f"Imported from django-waffle {kind} {obj.name!r}{when}."
    note = (getattr(obj, "note", "") or "").strip()
    if note:
        text += f"\n\nwaffle note: {note}"
    return text


def flag_rules(flag: Any, group_names: Sequence[str], user_keys: Sequence[str]) -> list[Any]:
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


def flag_type(flag: Any) -> str:
    """Documented rule: a Flag split by ``percent`` without rollout mode is an A/B test
    (``experiment``); every other Flag is a ``release``."""
    if flag.everyone is None and flag.percent and flag.percent > 0 and not flag.rollout:
        return "experiment"
    return "release"


def flag_differences(flag: Any, user_keys: Sequence[str], group_names: Sequence[str]) -> list[str]:
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
            + (f"; percent {percent_text(p)} is not imported" if p and p > 0 else "")
        )
    if flag.everyone is False:
        d.append(
            "everyone=No becomes a disabled flag (kill switch): waffle-compatible calls "
            "answer False, flagapp callers get their own default; the targeting is kept and "
            "applies once the flag is enabled"
        )
    if p and p > 0 and flag.everyone is None:
        pt = percent_text(p)
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
