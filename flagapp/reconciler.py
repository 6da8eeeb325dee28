"""The in-process reconciler of the embedded default (no Celery beat): a daemon thread per
server process that runs ``flagapp.publishing.reconcile`` every ``RECONCILE_INTERVAL``
seconds, started by the first request a real server handles.

Split from ``flagapp.publishing``; the pass itself stays there. This module imports
publishing, never the reverse (no import cycle). ``publishing.reconcile`` is looked up at
call time, so a test can stand in for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from . import publishing
from .conf import settings

__all__ = [
    "add_pass_hook",
    "in_process_wanted",
    "on_server_request",
    "start_reconciler",
    "stop_reconciler",
]

logger = logging.getLogger("flagapp")

_reconciler: _ReconcilerThread | None = None
_reconciler_lock = threading.Lock()
#: Run after each pass of the in-process reconciler (registered in ``ready()``; a registry,
#: so this module imports nothing of the notifications it sweeps).
_pass_hooks: list[Callable[[], Any]] = []


def add_pass_hook(hook: Callable[[], Any]) -> None:
    """Run ``hook`` after each pass of the in-process reconciler (idempotent)."""
    if hook not in _pass_hooks:
        _pass_hooks.append(hook)


_reconciler_checked = False


class _ReconcilerThread(threading.Thread):
    """A daemon thread that runs :func:`reconcile` every ``interval`` seconds, then the hooks
    of :func:`add_pass_hook` (the notifications that are due: the embedded default's
    sweeper of the notification outbox)."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="flagapp-reconciler", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.passes = 0

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                publishing.reconcile()
            except Exception:
                logger.exception("flagapp: the in-process reconciler failed; retrying")
            try:
                for hook in list(_pass_hooks):  # e.g. the notification outbox's sweeper
                    try:
                        hook()
                    except Exception:
                        logger.exception("flagapp: reconciler hook %r failed; retrying", hook)
            finally:
                self.passes += 1
                # A connection per pass: nothing held open between passes (CONN_MAX_AGE).
                connections[DEFAULT_DB_ALIAS].close()


def in_process_wanted() -> bool:
    """Whether this server process should run the reconciler itself.

    ``FLAGAPP["RECONCILE_IN_PROCESS"]`` True/False decides; None (default) means "when no
    Celery beat does it": Celery is absent or runs tasks eagerly (no broker). A
    ``RECONCILE_INTERVAL`` of 0 disables it.
    """
    from django.conf import settings as django_settings

    if float(settings.get("RECONCILE_INTERVAL") or 0) <= 0:
        return False
    choice = settings.get("RECONCILE_IN_PROCESS")
    if choice is not None:
        return bool(choice)
    if getattr(django_settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return True
    return not getattr(django_settings, "CELERY_BROKER_URL", None)


def start_reconciler(interval: float | None = None) -> _ReconcilerThread:
    """Start this process's reconciler thread (idempotent; returns the running one)."""
    global _reconciler
    with _reconciler_lock:
        if _reconciler is None or not _reconciler.is_alive():
            seconds = float(interval if interval is not None else settings.RECONCILE_INTERVAL)
            _reconciler = _ReconcilerThread(seconds)
            _reconciler.start()
            logger.info("flagapp: in-process reconciler started (every %g s)", seconds)
        return _reconciler


def stop_reconciler(timeout: float = 5.0) -> None:
    """Stop this process's reconciler thread (tests) and let the next request decide again."""
    global _reconciler, _reconciler_checked
    with _reconciler_lock:
        thread, _reconciler = _reconciler, None
        _reconciler_checked = False
    if thread is not None:
        thread.stopping.set()
        thread.join(timeout)


def _is_server_handler(sender: Any) -> bool:
    """A WSGI/ASGI handler class of a real server (Django's test client sends its own
    handler classes, or None for ``request_finished``)."""
    from django.core.handlers.base import BaseHandler
    from django.test.client import AsyncClientHandler, ClientHandler

    return (
        isinstance(sender, type)
        and issubclass(sender, BaseHandler)
        and not issubclass(sender, ClientHandler | AsyncClientHandler)
    )


def on_server_request(sender: Any = None, **kwargs: Any) -> None:
    """``request_started``/``request_finished`` receiver: the first request a *server*
    handles (WSGI or ASGI; never Django's test client) starts the in-process reconciler when
    :func:`in_process_wanted`. After the first decision this is one boolean check."""
    global _reconciler_checked
    if _reconciler_checked:
        return
    if not _is_server_handler(sender):
        return
    with _reconciler_lock:
        if _reconciler_checked:
            return
        _reconciler_checked = True
    try:
        if in_process_wanted():
            start_reconciler()
    except Exception:
        logger.exception("flagapp: could not start the in-process reconciler")
