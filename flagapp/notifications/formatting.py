"""What a person reads: the email and Slack renderings of an event payload.

Pure functions of the stored payload (the envelope of :mod:`flagapp.notifications.events`),
so a replayed delivery says exactly what the first attempt said. Email keeps the wording
the owner mails always had (expiry reminders, rollback notices, the stale report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["email_message", "slack_body", "summary"]


_PAST = {
    "start": "started",
    "advance": "advanced",
    "complete": "completed",
    "pause": "paused",
    "resume": "resumed",
    "rollback": "rolled back",
}


def _flag(data: Mapping[str, Any]) -> Mapping[str, Any]:
    flag = data.get("flag")
    return flag if isinstance(flag, Mapping) else {}


def summary(payload: Mapping[str, Any]) -> str:
    """One line (Slack mrkdwn-safe plain text) saying what happened."""
    kind = str(payload.get("type", ""))
    data: Mapping[str, Any] = payload.get("data") or {}
    who = data.get("actor") or "flagapp"
    if kind == "flag.changed":
        envs = ", ".join(data.get("environments") or []) or "all environments"
        changed = ", ".join(sorted((data.get("changes") or {}).keys())) or data.get("operation")
        return (
            f"{who} changed flag {_flag(data).get('key')} ({changed}) in {envs}: "
            f"{data.get('reason', '')}"
        )
    if kind.startswith("change_request."):
        cr = data.get("change_request") or {}
        where = f" in {cr.get('environment')}" if cr.get("environment") else ""
        text = (
            f"change request #{cr.get('id')} ({cr.get('operation')} {cr.get('flag') or ''}"
            f"{where}) {data.get('event')} by {who}: {cr.get('reason', '')}"
        )
        if data.get("event") == "rejected" and cr.get("review_comment"):
            text += f" (rejected: {cr.get('review_comment')})"
        return text
    if kind.startswith("rollout."):
        plan = data.get("rollout") or {}
        how = "automatically " if data.get("automatic") else ""
        verb = _PAST.get(str(data.get("action", "")), str(data.get("action", "")))
        return (
            f"rollout #{plan.get('id')} of {plan.get('flag')} in {plan.get('environment')}: "
            f"{how}{verb} {data.get('from_percent'):g}% -> {data.get('to_percent'):g}% "
            f"({data.get('reason', '')})"
        )
    if kind == "flag.expiring":
        flag = _flag(data)
        return f"flag {flag.get('key')} (owned by {flag.get('owner')}) {data.get('label')}"
    if kind == "flag.stale":
        stale = len(data.get("not_evaluated") or {})
        ready = len(data.get("ready_to_remove") or {})
        return (
            f"stale-flag report: {stale} not evaluated for {data.get('days')} days, "
            f"{ready} ready to remove"
        )
    return kind


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notifications, fallbacks) and one
    ``section`` block with the same words and the event type."""
    text = summary(payload)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"`{payload.get('type')}` · {payload.get('id')}"}
                ],
            },
        ],
    }


def email_message(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) of the email channel."""
    kind = str(payload.get("type", ""))
    data: Mapping[str, Any] = payload.get("data") or {}
    if kind == "flag.expiring":
        flag = _flag(data)
        label = data.get("label")
        return (
            f"[flagapp] flag {flag.get('key')} {label}",
            f"The feature flag {flag.get('key')} ({flag.get('name')}), owned by "
            f"{flag.get('owner')}, {label}.\n\n"
            "A flag past its expiry is technical debt: remove it from the code and archive it,\n"
            "or move its expiry date with a reason if it must stay.\n",
        )
    if kind == "rollout.rolled_back":
        plan = data.get("rollout") or {}
        how = "automatically rolled back" if data.get("automatic") else "rolled back"
        return (
            f"[flagapp] {plan.get('flag')} rollout {how} in {plan.get('environment')}",
            f"The rollout of {plan.get('flag')} ({plan.get('treatment_variant')} replacing "
            f"{plan.get('control_variant')}) in {plan.get('environment')} was {how}.\n\n"
            f"Reason: {data.get('reason')}\n\n"
            "The flag is back to its state before the rollout started.\n",
        )
    if kind == "flag.stale":
        from flagapp.governance.stale import StaleReport

        report = StaleReport(
            days=int(data.get("days") or 0),
            not_evaluated=dict(data.get("not_evaluated") or {}),
            ready_to_remove=dict(data.get("ready_to_remove") or {}),
        )
        total = len(report.not_evaluated) + len(report.ready_to_remove)
        return f"[flagapp] {total} stale flag(s)", report.as_text()
    text = summary(payload)
    return f"[flagapp] {text[:150]}", text + "\n"
