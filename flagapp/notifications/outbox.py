"""The notification outbox: a change and the intent to tell about it commit together.

Why: the dispatcher used to run after COMMIT (``transaction.on_commit``), so a process that
died between the change's COMMIT and the dispatcher's own transaction lost the
notification for good (the change was committed, no event was ever stored). Now the
senders of flagapp's notification signals call :func:`announce` *inside* the change's
transaction: the dispatcher's receiver stores the event and one pending delivery per
target there (the outbox rows, in a savepoint: a failing receiver is logged and never
fails the change), and the deliveries are attempted after COMMIT. A rolled-back change
rolls its rows back too: still nobody hears about a change that did not happen.

A process that dies after COMMIT and before the attempt leaves pending deliveries that are
due (``next_attempt_at`` = the change's time): the sweeper
(:func:`flagapp.notifications.delivery.deliver_due`, run by the beat task
``deliver_due_notifications`` and ``flagapp_run_tasks`` every 30 s, by the embedded
server's in-process reconciler thread every ``RECONCILE_INTERVAL`` and by
``manage.py flagapp_reconcile``) sends them. Bound: one sweep interval (30 s by default)
after the process died. Exactly once per event per endpoint: the rows are written once (in
the change's transaction) under the unique (event, endpoint) constraint, and each attempt
is claimed by one conditional UPDATE (``delivery._claim``).

The signal itself is still sent after COMMIT, for any other receiver of it, with
``recorded=True``: the dispatcher's receivers ignore such a send (the event is stored
already); a signal sent the old way, without ``recorded``, is still dispatched then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.dispatch import Signal

__all__ = ["announce", "register"]

logger = logging.getLogger("flagapp.notifications")


#: signal -> the dispatcher's receiver, registered by ``dispatcher.connect()`` (``ready()``).
#: A registry rather than an import: the senders (services, governance, rollouts) import
#: this module, and the dispatcher's own imports must not come back to them.
_receivers: dict[Signal, Callable[..., None]] = {}


def register(signal: Signal, receiver: Callable[..., None]) -> None:
    """Make ``receiver`` the one that stores ``signal``'s notification in the transaction."""
    _receivers[signal] = receiver


def announce(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Store the notification of ``signal`` in the current transaction (the outbox) and send
    ``signal`` to its other receivers after COMMIT. Never raises: a notification that cannot
    be stored is logged, the change goes on."""
    receiver = _receivers.get(signal)
    if receiver is not None:
        try:
            with transaction.atomic():  # a savepoint: a failure here rolls back only this
                receiver(sender, **kwargs)
        except Exception:
            logger.exception("flagapp: could not store the notification of %s", receiver.__name__)
    transaction.on_commit(
        lambda: signal.send(sender=sender, recorded=True, **kwargs),
        robust=True,
    )
