"""Lint rules over the flag inventory, for CI pipelines (``manage.py flagapp_lint``).

Each finding names a flag, a rule and a message. The rules:

* ``expired``         -- the flag's expiry date has passed (it should be gone by now)
* ``no-expiry``       -- a flag of a type in ``EXPIRY_REQUIRED_TYPES`` has no expiry date
* ``unowned``         -- the owner group has no active member: nobody gets the reminders
* ``stale``           -- not evaluated anywhere for ``STALE_DAYS`` days
* ``ready-to-remove`` -- a release flag serving one variant to everyone everywhere for
  ``STALE_DAYS`` days

Archived flags are skipped: they are already out of service. A non-empty result makes the
command exit non-zero, which is the point: CI fails until the debt is paid or the rule is
explicitly skipped (``--skip RULE``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from flagapp.conf import settings
from flagapp.governance.stale import stale_report
from flagapp.models import Flag

__all__ = ["RULES", "Finding", "lint"]

RULES: tuple[str, ...] = ("expired", "no-expiry", "unowned", "stale", "ready-to-remove")


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    flag: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"flag": self.flag, "rule": self.rule, "message": self.message}


def lint(
    *,
    now: dt.datetime | None = None,
    rules: Iterable[str] = RULES,
    stale_days: int | None = None,
) -> list[Finding]:
    """Every finding of the selected rules, sorted by flag key then rule."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    selected = set(rules)
    unknown = selected - set(RULES)
    if unknown:
        raise ValueError(f"unknown lint rule(s): {', '.join(sorted(unknown))}")
    findings: list[Finding] = []
    required = set(settings.EXPIRY_REQUIRED_TYPES)
    flags = Flag.objects.filter(archived=False).select_related("owner")
    flags = flags.annotate(
        members=Count("owner__user", filter=Q(owner__user__is_active=True), distinct=True)
    )
    for flag in flags:
        if "expired" in selected and flag.expires_on is not None and flag.expires_on < today:
            days = (today - flag.expires_on).days
            findings.append(
                Finding(flag.key, "expired", f"expired {flag.expires_on} ({days} days ago)")
            )
        if "no-expiry" in selected and flag.expires_on is None and flag.flag_type in required:
            findings.append(
                Finding(flag.key, "no-expiry", f"a {flag.flag_type} flag needs an expiry date")
            )
        if "unowned" in selected and not flag.members:
            findings.append(
                Finding(
                    flag.key, "unowned", f"owner group {flag.owner.name!r} has no active member"
                )
            )
    if selected & {"stale", "ready-to-remove"}:
        report = stale_report(now=now, days=stale_days)
        if "stale" in selected:
            for key, last in report.not_evaluated.items():
                findings.append(
                    Finding(
                        key,
                        "stale",
                        f"not evaluated for {report.days} days (last: {last or 'never'})",
                    )
                )
        if "ready-to-remove" in selected:
            for key, variant in report.ready_to_remove.items():
                findings.append(
                    Finding(
                        key,
                        "ready-to-remove",
                        f"serves {variant!r} to everyone in every environment "
                        f"for {report.days} days",
                    )
                )
    return sorted(findings)
