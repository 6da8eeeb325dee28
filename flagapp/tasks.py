"""flagapp's Celery tasks: a plain module of ``@shared_task`` functions.

Each task is a thin wrapper over a function that also runs without Celery: the embedded
default (no broker) runs the same work with ``manage.py flagapp_run_tasks``, and
:data:`PERIODIC_TASKS` is the list that command and the example beat schedule
(``example_project/celery_app.py``) share. Tasks return JSON-friendly dicts so a result
back-end can carry them and tests can check them.

Retries are safe by construction: reconciling publishes only where content differs,
reminders are deduplicated by ``ReminderLog``'s unique constraint, folding counts is
additive per flushed batch, and the report is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

__all__ = [
    "PERIODIC_TASKS",
    "advance_rollouts",
    "deliver_due_notifications",
    "deliver_notification",
    "fold_evaluation_counts",
    "reconcile_snapshots",
    "send_expiry_reminders",
    "stale_flag_report",
]


@shared_task(
    name="flagapp.tasks.send_expiry_reminders",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_expiry_reminders(today: str | None = None) -> dict[str, Any]:
    """Mail the owners of flags whose expiry is near or past (``today``: ISO date, tests)."""
    import datetime as dt

    from flagapp.governance.reminders import send_expiry_reminders as run

    day = dt.date.fromisoformat(today) if today else None
    return run(day).as_dict()


@shared_task(name="flagapp.tasks.stale_flag_report")
def stale_flag_report(days: int | None = None) -> dict[str, Any]:
    """Compute the stale-flag report, log it, and mail it to ``STALE_REPORT_EMAILS``."""
    import logging

    from flagapp.governance.stale import mail_stale_report, stale_report

    report = stale_report(days=days)
    mailed = mail_stale_report(report)
    logging.getLogger("flagapp.governance").info(
        "stale report: %d not evaluated, %d ready to remove",
        len(report.not_evaluated),
        len(report.ready_to_remove),
    )
    return {**report.as_dict(), "mailed_to": mailed}


@shared_task(name="flagapp.tasks.fold_evaluation_counts")
def fold_evaluation_counts() -> dict[str, Any]:
    """Fold this process's buffered evaluation counts and context samples into the
    database (``FlagEvaluationStat.last_evaluated_at`` per flag and environment), and store
    its buffered exposures and ``track()`` events (``flagapp.exposures``)."""
    from flagapp import exposures, sampling

    pending = sampling.pending_counts()
    samples = sampling.flush()
    events = exposures.flush()
    return {
        "pairs": len(pending),
        "evaluations": sum(pending.values()),
        "samples": samples,
        "events": events,
    }


@shared_task(name="flagapp.tasks.reconcile_snapshots")
def reconcile_snapshots() -> dict[str, Any]:
    """Publish what a failed post-commit publish left behind, and any environment whose
    latest snapshot differs from its stored configuration (``flagapp.publishing``)."""
    from flagapp.publishing import reconcile

    return reconcile().as_dict()


@shared_task(bind=True, name="flagapp.tasks.deliver_notification", max_retries=None)
def deliver_notification(self: Any, delivery_id: int) -> dict[str, Any]:
    """One attempt of one webhook/Slack/email delivery (``flagapp.notifications.delivery``).

    On failure a worker retries it with exponential backoff (``self.retry`` with the
    delivery's own countdown; attempts are bounded by ``WEBHOOK_MAX_ATTEMPTS`` on the row,
    not by Celery). Without a broker (the embedded default) the dispatcher attempts inline
    instead of queueing this task, and the retries are left to
    :func:`deliver_due_notifications`; called eagerly, this task does the same, so a failing
    receiver never holds the request that made the change for more than one bounded attempt.
    """
    from flagapp.notifications.delivery import attempt

    outcome = attempt(int(delivery_id))
    if outcome.retry_in is not None and not self.request.is_eager:
        # +1 s: the retry must find the row due (its next_attempt_at) to claim it.
        raise self.retry(countdown=outcome.retry_in + 1.0)
    return outcome.as_dict()


@shared_task(name="flagapp.tasks.deliver_due_notifications")
def deliver_due_notifications() -> dict[str, Any]:
    """Attempt every pending delivery that is due: retries under the embedded runner, and
    the sweeper of the notification outbox (``flagapp.notifications.outbox``): deliveries a
    process stored with its change and died before attempting (after COMMIT), a lost Celery
    message, a worker that died mid-attempt. Bound: this task's interval (30 s). Then
    deletes settled events older than ``NOTIFICATION_KEEP_DAYS`` (the log stays bounded)."""
    from flagapp.notifications.delivery import deliver_due, prune

    return {**deliver_due(), "pruned": prune()}


from flagapp.rollouts.tasks import advance_rollouts  # noqa: E402 - rollout helper's task

#: Beat interval of :func:`reconcile_snapshots`: the bound on how long a committed change can
#: stay unpublished after a post-commit failure (docs/deploy.md, "Guarantees").
RECONCILE_SECONDS = 30.0

#: name -> (task, the beat interval in seconds). ``flagapp_run_tasks`` runs them in this
#: order; other parts of flagapp add their periodic tasks here.
PERIODIC_TASKS: dict[str, tuple[Callable[..., Any], float]] = {
    # Heals a committed change whose publish failed after COMMIT (outbox + content hashes).
    "reconcile_snapshots": (reconcile_snapshots, RECONCILE_SECONDS),
    "fold_evaluation_counts": (fold_evaluation_counts, 60.0),
    "send_expiry_reminders": (send_expiry_reminders, 3600.0),
    "stale_flag_report": (stale_flag_report, 86400.0),
    # Rollout steps, guardrail checks, automatic rollback: a breach is acted on within this.
    "advance_rollouts": (advance_rollouts, 60.0),
    # Webhook/Slack/email retries that are due, and the outbox's sweeper: deliveries a dead
    # process or a lost message left behind are sent within this interval.
    "deliver_due_notifications": (deliver_due_notifications, 30.0),
}
