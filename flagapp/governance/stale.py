"""The stale-flag report: flags nobody evaluates, and release flags ready to be removed.

Two kinds of dead weight, both measured over ``FLAGAPP["STALE_DAYS"]`` (N):

* **not evaluated**: no evaluation recorded in any environment for N days
  (``FlagEvaluationStat.last_evaluated_at``, folded from in-process evaluations and SDK
  reports). A flag younger than N days that was never evaluated is not stale yet.
* **ready to remove**: a release flag that serves one and the same variant to everyone in
  every environment (enabled, no rules and no prerequisites, a fixed fallthrough or a
  rollout with a single weighted variant) and whose states have not changed for N days.
  Its code path can be made unconditional and the flag archived.

The report is read by ``flagapp_lint``, by the periodic task (which hands it to the
notification dispatcher: a mail to ``FLAGAPP["STALE_REPORT_EMAILS"]`` when set, and a
``flag.stale`` event to the subscribed webhook endpoints) and is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from flagapp import evaluation, sampling
from flagapp.conf import settings
from flagapp.models import Flag, FlagState
from flagapp.notifications.outbox import announce
from flagapp.signals import stale_flags_reported

__all__ = ["StaleReport", "mail_stale_report", "stale_report", "uniform_variant"]

logger = logging.getLogger("flagapp.governance")


@dataclass(slots=True)
class StaleReport:
    days: int
    #: key -> last evaluation (ISO string) or None when never evaluated
    not_evaluated: dict[str, str | None] = field(default_factory=dict)
    #: key -> the variant served to everyone
    ready_to_remove: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.not_evaluated and not self.ready_to_remove

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "not_evaluated": dict(self.not_evaluated),
            "ready_to_remove": dict(self.ready_to_remove),
        }

    def as_text(self) -> str:
        lines = [f"flagapp stale-flag report (threshold {self.days} days)"]
        lines.append(f"\nNot evaluated for {self.days} days ({len(self.not_evaluated)}):")
        for key, last in self.not_evaluated.items():
            lines.append(f"  {key}  (last evaluated: {last or 'never'})")
        lines.append(f"\nReady to remove ({len(self.ready_to_remove)}):")
        for key, variant in self.ready_to_remove.items():
            lines.append(f"  {key}  (serves {variant!r} to everyone in every environment)")
        return "\n".join(lines) + "\n"


def uniform_variant(state: Any) -> str | None:
    """The variant a flag state serves to every context, or None if it depends on the
    context (rules, prerequisites, a split) or serves the caller's default."""
    # ``rules.all()`` rather than ``exists()``: prefetched rules then cost no query.
    if not state.enabled or state.prerequisites or len(state.rules.all()):
        return None
    return _single_variant(state.fallthrough)


def _single_variant(serve: Mapping[str, Any] | None) -> str | None:
    if not serve:
        return None
    if serve.get("variant") is not None:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    served = [w["variant"] for w in rollout.get("weights", []) if int(w.get("weight", 0)) > 0]
    return str(served[0]) if len(served) == 1 else None


def stale_report(now: dt.datetime | None = None, days: int | None = None) -> StaleReport:
    now = now or timezone.now()
    days = int(settings.STALE_DAYS if days is None else days)
    cutoff = now - dt.timedelta(days=days)
    evaluation.flush_usage()  # this process's counts first
    sampling.flush()
    report = StaleReport(days=days)
    last_seen = {key: last for key, (_, last) in sampling.evaluation_totals().items()}
    flags = list(Flag.objects.filter(archived=False).order_by("key"))
    for flag in flags:
        last = last_seen.get(flag.key)
        if (last is None and flag.created_at <= cutoff) or (last is not None and last <= cutoff):
            report.not_evaluated[flag.key] = last.isoformat() if last else None
    states_by_flag: dict[int, list[Any]] = {}
    for state in FlagState.objects.filter(
        flag__archived=False, flag__flag_type="release"
    ).prefetch_related("rules"):
        states_by_flag.setdefault(state.flag_id, []).append(state)
    for flag in flags:
        states = states_by_flag.get(flag.pk)
        if not states or any(s.updated_at > cutoff for s in states):
            continue
        variants = {uniform_variant(s) for s in states}
        if len(variants) == 1 and None not in variants:
            report.ready_to_remove[flag.key] = str(variants.pop())
    return report


def mail_stale_report(report: StaleReport) -> int:
    """Hand a non-empty report to the notification dispatcher (the outbox): a mail to
    ``FLAGAPP["STALE_REPORT_EMAILS"]`` and ``flag.stale`` to the subscribed endpoints.
    Returns the number of mail recipients (0 when none are configured or the report is
    empty)."""
    if report.empty:
        return 0
    recipients = list(settings.STALE_REPORT_EMAILS or [])
    announce(stale_flags_reported, None, report=report, recipients=recipients)
    return len(recipients)
