"""The one notification dispatcher: flagapp's signals in, stored deliveries out.

Why one: services, governance, rollouts and the periodic reports only *announce*
(:func:`flagapp.notifications.outbox.announce`, inside the change's transaction: the
outbox); this module alone decides who hears about what —
the active webhook/Slack endpoints subscribed to the event type and environment, and the
email channel (a flag's owners on an expiry or a rollback, ``STALE_REPORT_EMAILS`` for the
stale report) — and records one :class:`~flagapp.models.NotificationEvent` plus one
:class:`~flagapp.models.NotificationDelivery` per target in the change's transaction; the
first attempts run after COMMIT, and the periodic sweep sends what a dead process left
pending. The sending
itself (HTTP with bounded timeouts, SMTP, retries with backoff) is
:mod:`flagapp.notifications.delivery`, run by Celery or ``flagapp_run_tasks``.

Matching: an endpoint with no event types selected gets every type; one with no
environments selected gets every environment. An event that concerns no environment (a
flag's metadata, an expiry reminder, the stale report) goes to every endpoint subscribed
to its type. A receiver failing here is logged and never turns the change into an error
(``announce`` runs it in a savepoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from flagapp.governance.owners import owner_emails

from . import events, outbox

__all__ = ["connect", "dispatch", "has_subscribers", "subscribed_endpoints"]

logger = logging.getLogger("flagapp.notifications")


def subscribed_endpoints(event_type: str, environment_keys: Iterable[str]) -> list[Any]:
    """The active endpoints that want ``event_type`` for these environments."""
    from flagapp.models import WebhookEndpoint

    envs = set(environment_keys)
    chosen = []
    for endpoint in WebhookEndpoint.objects.filter(active=True).prefetch_related("environments"):
        types = endpoint.event_types or []
        if types and event_type not in types:
            continue
        wanted = {e.key for e in endpoint.environments.all()}
        if wanted and envs and not wanted & envs:
            continue
        chosen.append(endpoint)
    return chosen


def has_subscribers(event_type: str, environment_keys: Iterable[str] = ()) -> bool:
    """Whether any active endpoint would receive ``event_type`` (callers that only notify
    when someone listens, e.g. a reminder for an owner group without email)."""
    return bool(subscribed_endpoints(event_type, environment_keys))


def dispatch(
    event_type: str,
    data: dict[str, Any],
    *,
    environment_keys: Sequence[str] = (),
    flag_key: str = "",
    email_to: Sequence[str] = (),
) -> Any:
    """Record ``event_type`` for every subscribed endpoint and, when ``email_to`` is given,
    for the email channel; deliveries are queued after COMMIT. Returns the stored
    :class:`~flagapp.models.NotificationEvent`, or None when nobody is to be told (nothing
    is stored then: no endpoints configured costs one query per change)."""
    from flagapp.models import NotificationDelivery, NotificationEvent

    if event_type not in events.EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    keys = list(environment_keys)
    endpoints = subscribed_endpoints(event_type, keys)
    recipients = sorted({r for r in email_to if r})
    if not endpoints and not recipients:
        return None
    now = timezone.now()
    with transaction.atomic():
        event = NotificationEvent(event_type=event_type, flag_key=flag_key, environment_keys=keys)
        event.payload = {
            "id": str(event.event_id),
            "type": event_type,
            "created_at": now.isoformat(),
            "environments": keys,
            "data": data,
        }
        event.save()
        ids = [
            NotificationDelivery.objects.create(
                event=event, endpoint=endpoint, channel=endpoint.kind, next_attempt_at=now
            ).pk
            for endpoint in endpoints
        ]
        if recipients:
            email = NotificationDelivery.objects.create(
                event=event,
                channel=NotificationDelivery.CHANNEL_EMAIL,
                recipients=recipients,
                next_attempt_at=now,
            )
            ids.append(email.pk)
        transaction.on_commit(lambda: _enqueue(ids), robust=True)
    logger.info("notification %s %s: %d deliveries", event_type, event.event_id, len(ids))
    return event


def _enqueue(ids: list[int]) -> None:
    from .delivery import enqueue

    enqueue(ids)


# ---------------------------------------------------------------------------------------
# signal receivers (connected in FlagappConfig.ready through connect())


def on_flag_changed(sender: Any, *, flag: Any, **kw: Any) -> None:
    if kw.get("recorded"):
        return  # stored in the change's transaction (outbox.announce)
    keys = list(kw.get("environment_keys") or [])
    dispatch(
        events.FLAG_CHANGED,
        events.flag_changed_data(
            flag,
            operation=str(kw.get("operation", "")),
            environment_keys=keys,
            actor=kw.get("actor"),
            reason=str(kw.get("reason", "")),
            changes=kw.get("changes") or {},
        ),
        environment_keys=keys,
        flag_key=flag.key,
    )


def on_change_request(sender: Any, *, change_request: Any, event: str, **kw: Any) -> None:
    if kw.get("recorded"):
        return  # stored in the change's transaction (outbox.announce)
    cr = change_request
    dispatch(
        f"change_request.{event}",
        events.change_request_data(cr, event=event, actor=kw.get("actor")),
        environment_keys=[cr.environment_key] if cr.environment_key else [],
        flag_key=cr.flag_key or "",
    )


def on_rollout_transition(sender: Any, *, plan: Any, transition: Any, **kw: Any) -> None:
    if kw.get("recorded"):
        return  # stored in the change's transaction (outbox.announce)
    event_type = events.ROLLOUT_ACTIONS.get(transition.action)
    if event_type is None:
        return
    email: list[str] = []
    if event_type == events.ROLLOUT_ROLLED_BACK and plan.notify_owners:
        email = owner_emails(plan.flag)
        if not email:
            logger.warning(
                "rollout %s rolled back but owner group %s has no email",
                plan.pk,
                plan.flag.owner,
            )
    dispatch(
        event_type,
        events.rollout_data(plan, transition),
        environment_keys=[plan.environment.key],
        flag_key=plan.flag.key,
        email_to=email,
    )


def on_flag_expiring(sender: Any, *, flag: Any, stage: str, label: str, **kw: Any) -> None:
    if kw.get("recorded"):
        return  # stored in the change's transaction (outbox.announce)
    dispatch(
        events.FLAG_EXPIRING,
        events.flag_expiring_data(flag, stage=stage, label=label),
        flag_key=flag.key,
        email_to=list(kw.get("recipients") or []),
    )


def on_stale_flags(sender: Any, *, report: Any, **kw: Any) -> None:
    if kw.get("recorded"):
        return  # stored in the change's transaction (outbox.announce)
    dispatch(
        events.FLAG_STALE,
        events.stale_data(report),
        email_to=list(kw.get("recipients") or []),
    )


def _sweep() -> None:
    """Deliveries that are due (a dead process's outbox rows, retries), at most 50 a pass."""
    from .delivery import deliver_due

    deliver_due(limit=50)


def connect() -> None:
    """Connect the receivers (``FlagappConfig.ready``); idempotent (dispatch_uid)."""
    from django.dispatch import Signal

    from flagapp import signals

    pairs: list[tuple[Signal, Callable[..., None]]] = [
        (signals.flag_changed, on_flag_changed),
        (signals.change_request_changed, on_change_request),
        (signals.rollout_transition, on_rollout_transition),
        (signals.flag_expiring, on_flag_expiring),
        (signals.stale_flags_reported, on_stale_flags),
    ]
    from flagapp import reconciler

    # The embedded server's reconciler thread also sweeps the outbox (no beat there).
    reconciler.add_pass_hook(_sweep)
    for signal, receiver in pairs:
        outbox.register(signal, receiver)  # stored in the change's transaction
        signal.connect(
            receiver, dispatch_uid=f"flagapp.notifications.{receiver.__name__}", weak=False
        )
