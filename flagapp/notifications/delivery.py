"""Sending a stored delivery: one attempt at a time, bounded, logged, retried with backoff.

Why attempts are claimed in the database: a delivery can be picked up by its Celery task,
by that task's retry and by the periodic sweep (:func:`deliver_due`, the safety net after a
lost message or a crash, and the only retry mechanism of the embedded runner
``flagapp_run_tasks``). :func:`attempt` first moves the row's ``next_attempt_at`` forward
by a lease with one conditional UPDATE (``status = pending and next_attempt_at <= now``):
exactly one of them wins, so a receiver gets one request per scheduled attempt, and a
worker that dies mid-attempt leaves the row to be retried when the lease ends.

Bounds: the TCP connect and every socket read are limited (``WEBHOOK_CONNECT_TIMEOUT``,
``WEBHOOK_READ_TIMEOUT``), the response body read is capped (``WEBHOOK_RESPONSE_MAX_BYTES``,
kept as an excerpt for the log) and so is the whole read phase; redirects are not
followed. Attempts are bounded (``WEBHOOK_MAX_ATTEMPTS``), spaced
``WEBHOOK_BACKOFF_SECONDS * 2 ** (n - 1)`` up to ``WEBHOOK_BACKOFF_MAX_SECONDS``; then the
delivery is ``failed`` and the admin's "replay" action queues it again.

Delivery is at least once: receivers deduplicate on ``Flagapp-Event-Id``. The endpoint's
secret is used to sign and for nothing else: it is in no log line, error or attempt row.
"""

from __future__ import annotations

import contextvars
import json
import logging
import smtplib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from flagapp.conf import settings

from .formatting import email_message, slack_body
from .signing import HEADER, signature_header

__all__ = [
    "Outcome",
    "attempt",
    "backoff_seconds",
    "deliver_due",
    "enqueue",
    "prune",
    "replay",
    "request_body",
    "uses_broker",
]

logger = logging.getLogger("flagapp.notifications")

USER_AGENT = "flagapp-webhooks/1"

#: Set while this thread posts to an endpoint: httpx logs every request's full URL at INFO,
#: and a Slack hook URL is a credential, so those records are dropped (ours say enough).
_posting: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flagapp_webhook_post", default=False
)


class _HideEndpointUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _posting.get()


logging.getLogger("httpx").addFilter(_HideEndpointUrls())


@dataclass(slots=True)
class Outcome:
    delivery: int
    #: "succeeded" | "retrying" | "failed" | "skipped" (another worker has it, or not due)
    status: str
    attempt: int = 0
    response_code: int | None = None
    duration_ms: int = 0
    error: str = ""
    #: seconds until the next attempt when retrying
    retry_in: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backoff_seconds(attempts: int) -> float:
    """Wait after the ``attempts``-th failed attempt (exponential, capped)."""
    base = float(settings.WEBHOOK_BACKOFF_SECONDS)
    cap = float(settings.WEBHOOK_BACKOFF_MAX_SECONDS)
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def _lease() -> timedelta:
    """How long a claimed attempt owns its row: the longest an attempt can take, plus
    margin (a worker that died mid-attempt is retried after this)."""
    bound = 2 * float(settings.WEBHOOK_CONNECT_TIMEOUT) + 2 * float(settings.WEBHOOK_READ_TIMEOUT)
    return timedelta(seconds=bound + 30)


def request_body(delivery: Any) -> bytes:
    """The exact bytes POSTed: the event envelope, or the Slack rendering of it."""
    payload = delivery.event.payload
    if delivery.channel == "slack":
        payload = slack_body(payload)
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(
        "utf-8"
    )


def _claim(delivery_id: int, now: datetime) -> Any:
    from flagapp.models import NotificationDelivery

    won = NotificationDelivery.objects.filter(
        pk=delivery_id,
        status=NotificationDelivery.STATUS_PENDING,
        next_attempt_at__lte=now,
    ).update(next_attempt_at=now + _lease(), attempts=F("attempts") + 1)
    if not won:
        return None
    return NotificationDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def _post(delivery: Any) -> tuple[int, str]:
    endpoint = delivery.endpoint
    body = request_body(delivery)
    event = delivery.event
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Flagapp-Event": event.event_type,
        "Flagapp-Event-Id": str(event.event_id),
        "Flagapp-Delivery": str(delivery.pk),
        HEADER: signature_header(endpoint.secret, body),
    }
    connect = float(settings.WEBHOOK_CONNECT_TIMEOUT)
    read = float(settings.WEBHOOK_READ_TIMEOUT)
    cap = int(settings.WEBHOOK_RESPONSE_MAX_BYTES)
    timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    token = _posting.set(True)
    try:
        return _exchange(endpoint.url, body, headers, timeout, read, cap)
    finally:
        _posting.reset(token)


def _exchange(
    url: str, body: bytes, headers: dict[str, str], timeout: httpx.Timeout, read: float, cap: int
) -> tuple[int, str]:
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        # The status is known; read at most ``cap`` bytes of the body, and for no longer
        # than one read timeout in total (a receiver dripping bytes cannot hold us).
        deadline = time.monotonic() + read
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw(min(cap, 65536) or 1):
            chunks.append(chunk)
            size += len(chunk)
            if size >= cap or time.monotonic() > deadline:
                break
        excerpt = b"".join(chunks)[:cap].decode("utf-8", "replace")
        return response.status_code, excerpt


def _send_email(delivery: Any) -> None:
    from django.conf import settings as django_settings
    from django.core.mail import send_mail

    subject, body = email_message(delivery.event.payload)
    sender = settings.get("REMINDER_FROM_EMAIL") or django_settings.DEFAULT_FROM_EMAIL
    send_mail(subject, body, sender, list(delivery.recipients), fail_silently=False)


def _describe(exc: BaseException, delivery: Any) -> str:
    """An error message for the log: the exception class and text, with the URL (a Slack
    hook URL is itself a credential) replaced by the endpoint's name."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    endpoint = delivery.endpoint
    if endpoint is not None:
        text = text.replace(endpoint.url, f"<{endpoint.name}>")
        text = text.replace(endpoint.secret, "<secret>")
    return text[:1000]


def attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome:
    """One attempt of one delivery, if it is pending and due (``now``: tests, the sweep)."""
    from flagapp.models import DeliveryAttempt, NotificationDelivery

    now = now or timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return Outcome(delivery_id, "skipped")
    number = delivery.attempt_log.count() + 1
    started = timezone.now()
    t0 = time.perf_counter()
    code: int | None = None
    excerpt = ""
    error = ""
    try:
        if delivery.channel == NotificationDelivery.CHANNEL_EMAIL:
            _send_email(delivery)
        elif delivery.endpoint is None or not delivery.endpoint.active:
            error = "endpoint deactivated"
        else:
            code, excerpt = _post(delivery)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
        error = _describe(exc, delivery)
    duration = int((time.perf_counter() - t0) * 1000)
    ok = not error
    retry_in: float | None = None
    if ok:
        status = NotificationDelivery.STATUS_SUCCEEDED
        next_at = None
    elif delivery.attempts < int(settings.WEBHOOK_MAX_ATTEMPTS) and error != (
        "endpoint deactivated"
    ):
        status = NotificationDelivery.STATUS_PENDING
        retry_in = backoff_seconds(delivery.attempts)
        next_at = now + timedelta(seconds=retry_in)
    else:
        status = NotificationDelivery.STATUS_FAILED
        next_at = None
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=duration,
            response_code=code,
            response_excerpt=excerpt,
            error=error,
            succeeded=ok,
        )
        NotificationDelivery.objects.filter(pk=delivery.pk).update(
            status=status,
            next_attempt_at=next_at,
            last_response_code=code,
            last_duration_ms=duration,
            last_error=error,
            delivered_at=started if ok else None,
        )
    target = delivery.endpoint.name if delivery.endpoint is not None else delivery.channel
    log = logger.info if ok else logger.warning
    log(
        "delivery %s (%s -> %s) attempt %d: %s in %d ms",
        delivery.pk,
        delivery.event.event_type,
        target,
        delivery.attempts,
        "ok" if ok else error,
        duration,
    )
    result = "succeeded" if ok else ("retrying" if retry_in is not None else "failed")
    return Outcome(
        delivery.pk,
        result,
        attempt=delivery.attempts,
        response_code=code,
        duration_ms=duration,
        error=error,
        retry_in=retry_in,
    )


#: The Celery task that attempts one delivery (:func:`flagapp.tasks.deliver_notification`),
#: sent by name: ``flagapp.tasks`` imports this module, so importing the task object here
#: would close an import cycle (docs/internals.md, "Import cycles"). A test checks that the
#: name is a registered task.
DELIVER_TASK = "flagapp.tasks.deliver_notification"


def uses_broker() -> bool:
    """Whether deliveries go through a Celery broker: ``CELERY_BROKER_URL`` set and tasks
    not eager (the production shape). Otherwise — the embedded default — the first attempt
    runs inline after COMMIT and the retries are the periodic sweep's."""
    from django.conf import settings as django_settings

    if getattr(django_settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return False
    return bool(getattr(django_settings, "CELERY_BROKER_URL", None))


def enqueue(ids: Iterable[int]) -> None:
    """Send deliveries: queued for a Celery worker when there is a broker, else attempted
    here, once each (bounded by the timeouts). A broker that refuses the message loses
    nothing: the row is due, and the periodic sweep sends it."""
    if not uses_broker():
        for pk in ids:
            attempt(pk)
        return
    from celery import current_app

    for pk in ids:
        try:
            # retry=False: a broker that is down must not hold the committing request.
            current_app.send_task(DELIVER_TASK, args=(pk,), retry=False)
        except Exception:
            logger.exception("could not queue delivery %s; the periodic sweep will send it", pk)


def deliver_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Attempt every pending delivery that is due (the periodic task
    ``deliver_due_notifications``; under ``flagapp_run_tasks`` the only retry path)."""
    from flagapp.models import NotificationDelivery

    now = now or timezone.now()
    ids = list(
        NotificationDelivery.objects.filter(
            status=NotificationDelivery.STATUS_PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {"due": len(ids), "succeeded": 0, "retrying": 0, "failed": 0, "skipped": 0}
    for pk in ids:
        counts[attempt(pk, now=now).status] += 1
    return counts


def replay(deliveries: Iterable[Any], *, now: datetime | None = None) -> list[int]:
    """Queue deliveries again (the admin action): pending, attempts reset, due now. The
    attempt log keeps the earlier tries. A delivery already pending is left alone."""
    from flagapp.models import NotificationDelivery

    now = now or timezone.now()
    ids = [d.pk for d in deliveries if d.status != NotificationDelivery.STATUS_PENDING]
    with transaction.atomic():
        NotificationDelivery.objects.filter(pk__in=ids).exclude(
            status=NotificationDelivery.STATUS_PENDING
        ).update(
            status=NotificationDelivery.STATUS_PENDING,
            attempts=0,
            next_attempt_at=now,
            delivered_at=None,
        )
        transaction.on_commit(lambda: enqueue(ids), robust=True)
    return ids


def prune(*, now: datetime | None = None) -> int:
    """Delete events older than ``NOTIFICATION_KEEP_DAYS`` whose deliveries are all settled
    (succeeded or failed), with their deliveries and attempts; returns the events deleted.
    Pending deliveries are never pruned. ``None`` keeps everything."""
    from flagapp.models import NotificationDelivery, NotificationEvent

    keep = settings.get("NOTIFICATION_KEEP_DAYS")
    if keep is None:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=float(keep))
    pending = NotificationDelivery.objects.filter(
        status=NotificationDelivery.STATUS_PENDING
    ).values("event_id")
    old = NotificationEvent.objects.filter(created_at__lt=cutoff).exclude(pk__in=pending)
    ids = list(old.values_list("pk", flat=True)[:5000])
    if not ids:
        return 0
    NotificationEvent.objects.filter(pk__in=ids).delete()
    return len(ids)
