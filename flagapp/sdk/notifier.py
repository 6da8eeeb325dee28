"""Announces new snapshot versions to the SSE streams of every server process.

Flow: ``flagapp.snapshot.publish`` sends ``snapshot_published`` (after commit) in whatever
process made the change (a web request, the admin, a Celery worker, a management
command). :func:`on_snapshot_published` delivers the announcement to the streams of this
process at once and, with ``FLAGAPP["NOTIFIER"] = "redis"``, publishes it on the Redis
channel ``flagapp:<namespace>:snapshots`` (:func:`channel`; the namespace is
``flagapp.conf.namespace()``, so deployments and test runs sharing a Redis server never hear
each other); every other process runs one listener thread that fans messages out to its
own streams. The embedded default (``"local"``) needs no Redis: one process, in-process
fan-out only.

A message from Redis is a hint, not a fact: before it reaches a stream it is confirmed
against the store (the latest published snapshot of that environment, one small query), and
the stream is given the store's version and ETag. An announcement of a version the store
does not have (another deployment, a stale or forged message) is dropped, so it can neither
freeze a stream (a too-high version it would wait to exceed) nor mislead a client.

Streams subscribe from an asyncio event loop (the ASGI server's); announcements arrive from
other threads, so delivery goes through ``loop.call_soon_threadsafe``. Messages carry the
id of the process that sent them, so a process skips the Redis echo of its own message.
Streams also re-check the current version at each heartbeat, so a lost message costs at
most one heartbeat interval, never a stale client.

The same channel carries SDK key revocations (``{"type": "sdk_key_revoked"}``, sent for
``flagapp.signals.sdk_key_revoked``) so every process drops its cached lookup at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections

from flagapp import assembly, evaluation, sampling
from flagapp.conf import namespace, settings
from flagapp.sdk.keys import forget_public_id
from flagapp.signals import sdk_key_revoked, snapshot_published

__all__ = [
    "Announcement",
    "Subscription",
    "broadcast_key_revoked",
    "channel",
    "ensure_listener",
    "listening_channel",
    "on_snapshot_published",
    "publish",
    "stop_listener",
    "subscribe",
    "subscriber_count",
    "unsubscribe",
]

logger = logging.getLogger("flagapp.sdk")

_ORIGIN = uuid.uuid4().hex


def channel() -> str:
    """This deployment's Redis channel: ``flagapp:<namespace>:snapshots``."""
    return f"flagapp:{namespace()}:snapshots"


@dataclass(frozen=True, slots=True)
class Announcement:
    environment: str
    version: int
    etag: str
    #: the delta from the snapshot ``base`` (an etag) to this one, JSON text, when the
    #: publisher computed it and it is small (``STREAM_DELTA_MAX_BYTES``); streams that
    #: announced ``base`` last send it inline
    base: str | None = None
    delta: str | None = None


@dataclass(eq=False)
class Subscription:
    """One stream's inbox; it belongs to ``loop``, and only that loop reads or fills it.

    Why not an ``asyncio.Queue`` awaited with ``asyncio.wait_for``: with 5,000 streams a
    change woke every stream through a task per wait (``wait_for`` wraps the ``get``), a
    thread-safe call per stream and three event-loop steps each. Here a change costs one
    thread-safe call per event loop (:func:`_deliver` groups the streams by loop) and one
    step per stream: the stream awaits a plain future, with a timer for its heartbeat.
    """

    environment: str
    loop: asyncio.AbstractEventLoop
    pending: deque[Announcement] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None

    async def next(self, timeout: float) -> Announcement | None:
        """The next announcement, or None after ``timeout`` seconds without one."""
        if not self.pending:
            waiter = self.loop.create_future()
            self.waiter = waiter
            timer = self.loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        return self.pending.popleft() if self.pending else None

    def put(self, ann: Announcement) -> None:
        """Queue ``ann`` and wake the stream (from ``loop`` only)."""
        self.pending.append(ann)
        if self.waiter is not None:
            _wake(self.waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_subs: set[Subscription] = set()
_subs_lock = threading.Lock()


def subscribe(environment: str) -> Subscription:
    """Register a stream of ``environment``; call from the stream's event loop."""
    sub = Subscription(environment=environment, loop=asyncio.get_running_loop())
    with _subs_lock:
        _subs.add(sub)
    ensure_listener()
    return sub


def unsubscribe(sub: Subscription) -> None:
    with _subs_lock:
        _subs.discard(sub)


def subscriber_count() -> int:
    return len(_subs)


def _put_all(subs: list[Subscription], ann: Announcement) -> None:
    for sub in subs:
        sub.put(ann)


def _deliver(ann: Announcement) -> None:
    """Hand ``ann`` to every stream of its environment: one call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
    with _subs_lock:
        for s in _subs:
            if s.environment == ann.environment:
                by_loop.setdefault(s.loop, []).append(s)
    for loop, subs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, subs, ann)
        except RuntimeError:  # the loop is closed: those streams are gone
            for sub in subs:
                unsubscribe(sub)


def publish(ann: Announcement) -> None:
    """Announce a snapshot here and, in redis mode, to every other process."""
    _deliver(ann)
    if settings.NOTIFIER == "redis":
        message: dict[str, Any] = {
            "type": "snapshot",
            "origin": _ORIGIN,
            "environment": ann.environment,
            "version": ann.version,
            "etag": ann.etag,
        }
        if ann.delta is not None and ann.base is not None:
            message["base"], message["delta"] = ann.base, ann.delta
        _redis_publish(message)


def broadcast_key_revoked(public_id: str) -> None:
    if settings.NOTIFIER == "redis":
        _redis_publish({"type": "sdk_key_revoked", "origin": _ORIGIN, "public_id": public_id})


def _on_sdk_key_revoked(sender: Any = None, public_id: str = "", **kwargs: Any) -> None:
    """Receiver of ``flagapp.signals.sdk_key_revoked`` (this process already forgot it)."""
    if public_id:
        broadcast_key_revoked(public_id)


def on_snapshot_published(sender: Any = None, **kwargs: Any) -> None:
    """Receiver of ``flagapp.signals.snapshot_published``."""
    snap = kwargs.get("snapshot")
    env_key = kwargs.get("environment_key") or getattr(snap, "environment_key", None)
    if env_key is None and snap is not None:
        env_key = getattr(getattr(snap, "environment", None), "key", None)
    if snap is None or env_key is None:
        return
    delta, base = kwargs.get("delta"), kwargs.get("delta_base")
    if not isinstance(delta, str) or len(delta) > int(settings.STREAM_DELTA_MAX_BYTES):
        delta = base = None
    try:
        publish(
            Announcement(
                environment=str(env_key),
                version=int(snap.version),
                etag=str(snap.etag),
                base=str(base) if delta is not None and base else None,
                delta=delta if base else None,
            )
        )
    except Exception:  # a notification fault must never break the write that caused it
        logger.exception("could not announce snapshot %s of %s", snap.version, env_key)
    try:
        # A process that publishes hears the others' publishes from now on (redis mode), so
        # its publish assembly follows their deltas and its next publish stays incremental
        # (a Celery worker or an admin-only process would otherwise never start a listener).
        ensure_listener()
    except Exception:
        logger.warning("could not start the notifier listener", exc_info=True)


# --- Redis -----------------------------------------------------------------------------

_redis_client: Any = None
_listener: threading.Thread | None = None
_listener_channel: str | None = None
_listener_stop = threading.Event()
_listener_lock = threading.Lock()


def _client() -> Any:
    global _redis_client
    if _redis_client is None:
        import redis  # optional dependency: only redis mode needs it

        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5
        )
    return _redis_client


def _redis_publish(message: dict[str, Any]) -> None:
    name = channel()
    try:
        _client().publish(name, json.dumps(message))
    except Exception:
        # Streams elsewhere still catch up at their next heartbeat check.
        logger.warning("could not publish on Redis channel %s", name, exc_info=True)


def _handle(raw: bytes | str) -> None:
    msg = json.loads(raw)
    if not isinstance(msg, dict) or msg.get("origin") == _ORIGIN:
        return
    if msg.get("type") == "snapshot":
        confirmed = _confirm(str(msg["environment"]), int(msg["version"]))
        if confirmed is None:
            return
        # This process's evaluation cache may hold the old version until its next check;
        # a client told "new version" must not be answered 304 by this process. With the
        # publisher's delta it takes the new version at once (the engine compiles what
        # changed); without, or when the delta does not apply, it checks at its next use.
        ann = _with_delta(confirmed, msg)
        if ann.delta is None or not evaluation.apply_delta(ann.environment, ann.delta, ann.version):
            evaluation.expire(confirmed.environment)
        if ann.delta is not None:
            _follow(ann)
        _deliver(ann)
    elif msg.get("type") == "sdk_key_revoked":
        forget_public_id(str(msg["public_id"]))


def _follow(ann: Announcement) -> None:
    """Keep this process's publish assembly in step with another process's publish (so a
    change published here next re-reads only what it touched); never raises."""
    try:
        assembly.follow(ann.environment, json.loads(ann.delta or "{}"))
    except Exception:
        logger.warning("could not follow the delta of %s v%s", ann.environment, ann.version)


def _with_delta(confirmed: Announcement, msg: dict[str, Any]) -> Announcement:
    """``confirmed`` with the message's delta when the message announced exactly the
    confirmed version and etag (otherwise the streams get a plain announcement and their
    clients fetch)."""
    delta, base = msg.get("delta"), msg.get("base")
    if not isinstance(delta, str) or not isinstance(base, str):
        return confirmed
    if (msg.get("version"), msg.get("etag")) != (confirmed.version, confirmed.etag):
        return confirmed
    return Announcement(
        environment=confirmed.environment,
        version=confirmed.version,
        etag=confirmed.etag,
        base=base,
        delta=delta,
    )


def _confirm(env_key: str, version: int) -> Announcement | None:
    """The store's latest snapshot of ``env_key`` when it is at least ``version``, else None
    (the announcement names a version this deployment never published: dropped)."""
    close_old_connections()  # this thread's connection may have outlived the database's
    try:
        published = evaluation.published_version(env_key)
    finally:
        close_old_connections()
    if published is None or published[0] < version:
        logger.info(
            "dropped an announcement of %s v%s: the store has %s",
            env_key,
            version,
            published[0] if published else "nothing",
        )
        return None
    return Announcement(environment=env_key, version=published[0], etag=published[1])


class _Dead(Exception):
    """The subscription stopped answering (a partition, a half-open socket): reconnect."""


def _listen(url: str, name: str, subscribed: threading.Event) -> None:
    """The listener thread: subscribe, fan messages out, and never trust a quiet socket.

    A pub/sub connection is silent by nature, so silence cannot tell a dead link from an
    idle channel: after ``NOTIFIER_HEALTH_SECONDS`` of silence the listener sends a PING on
    the subscription and expects its answer within the same time, and a (re)subscription
    must be confirmed within it too; otherwise it drops the connection and reconnects (a
    reconnect made into a network partition has its SUBSCRIBE swallowed and would otherwise
    wait forever). Announcements published while the listener was disconnected are lost
    (Redis pub/sub keeps nothing), so after every reconnect it re-checks the store for each
    environment it has streams of (:func:`_resync`). Bound: a change announced during an
    outage reaches the streams at most about 2 x ``NOTIFIER_HEALTH_SECONDS`` (detect, then
    reconnect; the backoff is capped at the same value) after Redis is reachable again,
    plus one query per environment; the streams' own heartbeat re-check remains the backstop.
    """
    import redis  # optional dependency: only redis mode needs it

    backoff = 0.25
    lost = False
    while not _listener_stop.is_set():
        health = max(0.1, float(settings.NOTIFIER_HEALTH_SECONDS))
        pubsub = None
        try:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=min(2.0, health), socket_timeout=health
            )
            pubsub = client.pubsub(ignore_subscribe_messages=False)
            pubsub.subscribe(name)
            now = time.monotonic()
            confirmed = False
            last_heard = now
            ping_sent: float | None = None
            while not _listener_stop.is_set():
                message = pubsub.get_message(timeout=min(1.0, health))
                now = time.monotonic()
                if message:
                    last_heard, ping_sent = now, None
                    kind = message.get("type")
                    if kind == "subscribe":
                        confirmed = True
                        backoff = 0.25
                        subscribed.set()
                        if lost:
                            lost = False
                            _resync()
                    elif kind == "message":
                        try:
                            _handle(message["data"])
                        except Exception:
                            logger.warning("bad message on %s ignored", name, exc_info=True)
                    continue
                if ping_sent is not None and now - ping_sent >= health:
                    raise _Dead(f"no answer to PING within {health:g} s")
                if not confirmed and now - last_heard >= health:
                    raise _Dead(f"SUBSCRIBE not confirmed within {health:g} s")
                if ping_sent is None and now - last_heard >= health:
                    pubsub.ping()
                    ping_sent = now
        except Exception as exc:
            lost = True
            subscribed.clear()
            logger.warning("Redis listener on %s lost its connection (%s); retrying", name, exc)
            _listener_stop.wait(backoff)
            backoff = min(backoff * 2, health)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()


def _resync() -> None:
    """After a reconnect: announcements sent meanwhile are lost, so ask the store.

    Each environment with streams in this process gets the store's latest version (the
    streams skip a version they already sent), and this process's evaluation cache
    re-checks at its next use.
    """
    with _subs_lock:
        envs = {s.environment for s in _subs}
    evaluation.expire()
    for env in sorted(envs):
        try:
            confirmed = _confirm(env, 0)
        except Exception:
            logger.warning("could not re-check %s after a reconnect", env, exc_info=True)
            continue
        if confirmed is not None:
            _deliver(confirmed)


def ensure_listener(wait: float = 0.0) -> bool:
    """Start this process's Redis listener thread once (redis mode only).

    ``wait`` > 0 blocks until the listener's own subscription is confirmed by Redis (at most
    that many seconds) and returns whether it is; tests use it instead of counting the
    channel's subscribers, which other processes could inflate.
    """
    global _listener, _listener_channel, _subscribed
    if settings.NOTIFIER != "redis":
        return False
    with _listener_lock:
        if _listener is None or not _listener.is_alive():
            _listener_stop.clear()
            _listener_channel = channel()
            _subscribed = threading.Event()
            _listener = threading.Thread(
                target=_listen,
                args=(settings.REDIS_URL, _listener_channel, _subscribed),
                name="flagapp-notifier",
                daemon=True,
            )
            _listener.start()
        subscribed = _subscribed
    return subscribed.wait(wait) if wait > 0 else subscribed.is_set()


_subscribed = threading.Event()


def listening_channel() -> str | None:
    """The channel this process's listener is subscribed to (None: no listener)."""
    return _listener_channel if _listener is not None and _listener.is_alive() else None


def stop_listener(timeout: float = 3.0) -> None:
    global _listener, _redis_client, _listener_channel
    _listener_stop.set()
    if _listener is not None:
        _listener.join(timeout)
    _listener = None
    _listener_channel = None
    _redis_client = None


def connect() -> None:
    """Connect the receivers; called from ``AppConfig.ready`` (idempotent)."""
    snapshot_published.connect(on_snapshot_published, dispatch_uid="flagapp.sdk.notifier")
    sdk_key_revoked.connect(_on_sdk_key_revoked, dispatch_uid="flagapp.sdk.notifier.revoked")
    # Async SDK views buffer statistics they cannot write from the event loop.
    sampling.connect()
