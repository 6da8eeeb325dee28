"""Expiry reminders to the members of a flag's owner group (email) and to the webhook
endpoints subscribed to ``flag.expiring``.

Stages come from :mod:`flagapp.governance.stages` (N days before, on the day, every M days
while overdue). "At most once per stage" is enforced by the database, not by the scheduler:
the sender inserts a ``ReminderLog`` row (unique per flag, expiry date and stage) and, on
COMMIT of that row, sends ``flagapp.signals.flag_expiring``. The notification dispatcher
turns it into one email delivery (and one per subscribed endpoint), each retried with
backoff until it succeeds (``flagapp.notifications.delivery``): a mail server that is down
delays the reminder, it does not lose it. A duplicate beat run or a retry of the task hits
the unique constraint and notifies nobody. On PostgreSQL a concurrent second insert waits
for the first transaction and then fails, so two workers racing on the same flag still send
one mail.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from flagapp.conf import settings
from flagapp.governance.owners import owner_emails
from flagapp.governance.stages import due_stage, stage_label
from flagapp.models import Flag, ReminderLog
from flagapp.notifications.dispatcher import has_subscribers
from flagapp.notifications.outbox import announce
from flagapp.signals import flag_expiring

__all__ = ["ReminderResult", "owner_emails", "send_expiry_reminders"]

logger = logging.getLogger("flagapp.governance")


@dataclass(slots=True)
class ReminderResult:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (flag key, stage)
    already_sent: list[tuple[str, str]] = field(default_factory=list)
    no_recipients: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": [list(x) for x in self.sent],
            "already_sent": [list(x) for x in self.already_sent],
            "no_recipients": list(self.no_recipients),
        }


def send_expiry_reminders(today: dt.date | None = None) -> ReminderResult:
    """Send every reminder due on ``today`` (default: the current local date)."""
    today = today or timezone.localdate()
    before = int(settings.REMINDER_DAYS_BEFORE)
    every = int(settings.REMINDER_OVERDUE_EVERY_DAYS)
    result = ReminderResult()
    flags = (
        Flag.objects.filter(archived=False, expires_on__isnull=False)
        .select_related("owner")
        .order_by("key")
    )
    for flag in flags:
        assert flag.expires_on is not None  # filtered above; narrows the type
        stage = due_stage(flag.expires_on, today, days_before=before, every_days=every)
        if stage is None:
            continue
        if ReminderLog.objects.filter(flag=flag, expiry=flag.expires_on, stage=stage).exists():
            result.already_sent.append((flag.key, stage))
            continue
        recipients = owner_emails(flag)
        if not recipients and not has_subscribers("flag.expiring"):
            # Not logged: once someone joins the group, the next run reminds them.
            logger.warning(
                "flag %s: owner group %s has no member with an email", flag.key, flag.owner
            )
            result.no_recipients.append(flag.key)
            continue
        try:
            with transaction.atomic():
                ReminderLog.objects.create(
                    flag=flag, expiry=flag.expires_on, stage=stage, recipients=recipients
                )
                _announce(flag, stage, today, recipients)
        except IntegrityError:
            result.already_sent.append((flag.key, stage))
            continue
        result.sent.append((flag.key, stage))
        logger.info("flag %s: sent expiry reminder %s to %d", flag.key, stage, len(recipients))
    return result


def _announce(flag: Any, stage: str, today: dt.date, recipients: list[str]) -> None:
    """``flag_expiring`` once the ``ReminderLog`` row commits (a rolled-back or duplicate
    insert notifies nobody); the dispatcher mails ``recipients`` and calls the webhooks."""
    label = stage_label(stage, flag.expires_on, today)
    announce(flag_expiring, type(flag), flag=flag, stage=stage, label=label, recipients=recipients)
