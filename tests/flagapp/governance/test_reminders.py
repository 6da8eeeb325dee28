"""Expiry reminders: mails to the owner group, each stage at most once per flag."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import TestCase, override_settings

from flagapp.governance.reminders import send_expiry_reminders
from flagapp.models import ReminderLog
from tests.flagapp import governance_helpers as h

TODAY = dt.date(2026, 6, 1)


def remind(today: dt.date) -> Any:
    """One run of the reminders, its transaction committed: the mail is a notification
    delivery queued after COMMIT (flagapp.notifications), which the test transaction of
    the ``db`` fixture would otherwise never reach."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return send_expiry_reminders(today)


class FailingBackend(BaseEmailBackend):
    """An SMTP server that is down: every send raises."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("smtp down")


@pytest.fixture
def owners(db: None) -> Group:
    g = Group.objects.create(name="payments")
    h.user("alice", groups=(g,))
    h.user("bob", groups=(g,))
    h.user("noemail", email="", groups=(g,))
    h.user("gone", groups=(g,), active=False)
    h.user("outsider")
    return g


def test_reminders__seven_days_before__one_mail_to_active_members_with_email(
    owners: Group,
) -> None:
    h.flag("payments.checkout.v2", owners, expires_on=TODAY + dt.timedelta(days=7))
    h.flag("payments.later.far", owners, expires_on=TODAY + dt.timedelta(days=8))
    result = remind(TODAY)
    assert result.sent == [("payments.checkout.v2", "before")]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["alice@example.com", "bob@example.com"]
    assert "payments.checkout.v2" in message.subject
    assert "expires in 7 days" in message.subject


def test_reminders__duplicate_runs_same_day__stage_sent_once(owners: Group) -> None:
    h.flag("payments.checkout.v2", owners, expires_on=TODAY + dt.timedelta(days=3))
    remind(TODAY)
    again = remind(TODAY)
    later = remind(TODAY + dt.timedelta(days=1))  # still the "before" stage
    assert len(mail.outbox) == 1
    assert again.already_sent == [("payments.checkout.v2", "before")]
    assert later.sent == []


def test_reminders__whole_lifecycle__before_due_and_every_m_days_overdue(owners: Group) -> None:
    expiry = TODAY
    h.flag("payments.checkout.v2", owners, expires_on=expiry)
    stages = []
    with override_settings(FLAGAPP={"REMINDER_DAYS_BEFORE": 7, "REMINDER_OVERDUE_EVERY_DAYS": 5}):
        for offset in range(-10, 16):  # one beat per day from E-10 to E+15
            result = remind(expiry + dt.timedelta(days=offset))
            stages += [(offset, stage) for _, stage in result.sent]
    assert stages == [
        (-7, "before"),
        (0, "due"),
        (5, "overdue-1"),
        (10, "overdue-2"),
        (15, "overdue-3"),
    ]
    assert len(mail.outbox) == 5
    assert "expires today" in mail.outbox[1].subject
    assert "10 days overdue" in mail.outbox[3].subject


def test_reminders__send_fails__logged_once_and_delivery_retried_until_sent(
    owners: Group,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from flagapp.models import NotificationDelivery
    from flagapp.notifications.delivery import deliver_due

    h.flag("payments.checkout.v2", owners, expires_on=TODAY)
    with override_settings(EMAIL_BACKEND=f"{__name__}.FailingBackend"):
        result = remind(TODAY)
    assert result.sent == [("payments.checkout.v2", "due")]
    assert ReminderLog.objects.count() == 1
    delivery = NotificationDelivery.objects.get(channel="email")
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert "smtp down" in delivery.last_error
    assert delivery.next_attempt_at is not None
    assert remind(TODAY).already_sent == [("payments.checkout.v2", "due")]  # the task's retry
    later = timezone.now() + timedelta(hours=2)
    assert deliver_due(now=later)["succeeded"] == 1
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["alice@example.com", "bob@example.com"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


def test_reminders__expiry_moved__reminders_rearmed(owners: Group) -> None:
    f = h.flag("payments.checkout.v2", owners, expires_on=TODAY)
    remind(TODAY)
    f.expires_on = TODAY + dt.timedelta(days=2)
    f.save()
    result = remind(TODAY)
    assert result.sent == [("payments.checkout.v2", "before")]
    assert len(mail.outbox) == 2


def test_reminders__owner_group_without_email__not_logged_sent_later(db: None) -> None:
    g = Group.objects.create(name="nobody")
    h.flag("ops.cache.bypass", g, expires_on=TODAY)
    result = remind(TODAY)
    assert result.no_recipients == ["ops.cache.bypass"]
    assert not ReminderLog.objects.exists()
    h.user("carol", groups=(g,))
    assert remind(TODAY).sent == [("ops.cache.bypass", "due")]


def test_reminders__archived_or_no_expiry__ignored(owners: Group) -> None:
    h.flag("payments.old.thing", owners, expires_on=TODAY, archived=True)
    h.flag("payments.ops.switch", owners, flag_type="ops")
    assert remind(TODAY).sent == []
    assert mail.outbox == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reminders__concurrent_runs_on_postgres__one_mail() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs FLAGAPP_TEST_DB=postgres (row locks on the unique index)")
    g = Group.objects.create(name="payments")
    h.user("alice", groups=(g,))
    for i in range(5):
        h.flag(f"payments.flag.f{i}", g, expires_on=TODAY)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            send_expiry_reminders(TODAY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(mail.outbox) == 5
    assert ReminderLog.objects.count() == 5
