"""Celery task of the rollout controller (re-exported by ``flagapp.tasks``).

One task checks every live plan: it steps the healthy ones whose minimum time and sample
are met and rolls back any that breach a guardrail — in the same run, so a breach is acted
on within one beat interval (60 s in ``flagapp.tasks.PERIODIC_TASKS``).
Retrying is safe: each plan's check runs in its own transaction with the plan row locked,
and a step already taken makes the next check wait for the new step's minimum time.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

__all__ = ["advance_rollouts"]


@shared_task(name="flagapp.tasks.advance_rollouts")
def advance_rollouts(now: str | None = None) -> dict[str, Any]:
    """Check every running or paused rollout once (``now``: ISO datetime, for tests)."""
    import datetime as dt

    from .controller import tick

    at = dt.datetime.fromisoformat(now) if now else None
    outcomes = tick(now=at)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
    return {"checked": len(outcomes), **counts, "outcomes": [o.as_dict() for o in outcomes]}
