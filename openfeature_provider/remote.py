"""Network sources: HTTP polling with ETags, and SSE streaming with a fall-back to polling.

Both run one daemon thread each, report through the listener (see sources.py), never let an
exception escape that thread, and stop promptly: waits use an Event, and a blocked stream read
is woken by shutting its socket down.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Protocol

import httpx

from openfeature_provider.engine import Ruleset
from openfeature_provider.exceptions import (
    AuthenticationError,
    RateLimited,
    SourceError,
    UnexpectedResponse,
)
from openfeature_provider.transport import (
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    RulesetClient,
    SdkKey,
    iter_sse,
)

__all__ = ["STREAM_RETRY_MAX", "Backoff", "PollingSource", "StreamingSource"]

#: Longest wait between stream reconnect attempts while polling as fall-back.
STREAM_RETRY_MAX = 30.0

logger = logging.getLogger("flagapp.provider")


class _Listener(Protocol):  # same shape as sources.SnapshotListener (no import cycle)
    def on_snapshot(self, ruleset: Ruleset) -> None: ...

    def on_error(self, exc: BaseException, fatal: bool = False) -> None: ...


class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    Step n waits between d/2 and d where d = min(maximum, base * 2**n). The fixed half keeps a
    fleet from hammering a recovering server; the random half spreads the fleet out.
    """

    def __init__(
        self, base: float = 0.5, maximum: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or maximum < base:
            raise ValueError("need 0 < base <= maximum")
        self.base = base
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        step = min(self.maximum, self.base * float(1 << min(self.attempt, 32)))
        self.attempt += 1
        return step / 2 + self._rng.uniform(0, step / 2)

    def reset(self) -> None:
        self.attempt = 0


class _RemoteSource:
    """Shared thread handling for the two HTTP sources."""

    thread_name = "flagapp-source"

    def __init__(
        self,
        url: str,
        sdk_key: SdkKey,
        *,
        poll_interval: float = 30.0,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        client: RulesetClient | None = None,
        transport: httpx.BaseTransport | None = None,
        deltas: bool = True,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.poll_interval = poll_interval
        self.client = client or RulesetClient(
            url,
            sdk_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            fetch_timeout=fetch_timeout,
            max_response_bytes=max_response_bytes,
            transport=transport,
            deltas=deltas,
        )
        self.backoff = Backoff(backoff_base, max(backoff_base, backoff_max))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: _Listener | None = None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self, listener: _Listener) -> None:
        if self._thread is not None:
            return
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close connections; idempotent, bounded by the read timeout."""
        self._stop.set()
        self.client.interrupt_stream()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.client.read_timeout + self.client.connect_timeout + 1)
        self.client.close()

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug must not stop flag updates silently
            logger.exception("flagapp: snapshot source crashed")
            # not fatal: the provider keeps serving what it has and signals PROVIDER_ERROR
            self._report(RuntimeError(f"snapshot source crashed: {type(exc).__name__}: {exc}"))

    def _run(self) -> None:
        raise NotImplementedError

    def _report(self, exc: BaseException, fatal: bool = False) -> None:
        listener = self._listener
        if listener is None or (self._stop.is_set() and not fatal):
            return
        try:
            listener.on_error(exc, fatal=fatal)
        except Exception:
            logger.exception("flagapp: listener failed in on_error")

    def _deliver(self, ruleset: Ruleset) -> None:
        listener = self._listener
        if listener is None or self._stop.is_set():
            return
        try:
            listener.on_snapshot(ruleset)
        except Exception:
            logger.exception("flagapp: listener failed in on_snapshot")

    def poll_once(self) -> float:
        """One GET /sdk/v1/ruleset; returns how long to wait before the next one.

        Every error is reported here, a rejected key (401/403) too: the provider keeps serving
        what it holds and we keep asking with backoff, so a restored or rotated key is picked
        up (the provider stops us if it holds nothing at all).
        """
        try:
            ruleset, _changed = self.client.fetch()
        except RateLimited as exc:
            self._report(exc)
            return max(exc.retry_after or 0.0, self.backoff.next())
        except SourceError as exc:
            self._report(exc)
            return min(self.poll_interval, self.backoff.next())
        self.backoff.reset()
        self._deliver(ruleset)
        return self.poll_interval


class PollingSource(_RemoteSource):
    """Polls ``GET /sdk/v1/ruleset`` every ``poll_interval`` seconds with If-None-Match.

    The first request happens immediately on ``start``. After a failure the next attempt
    comes sooner (backoff from ``backoff_base``, never later than the poll interval), so a
    brief outage is noticed and healed quickly; a 429's Retry-After is honoured.
    """

    thread_name = "flagapp-poll"

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(self.poll_once()):
                return


class StreamingSource(_RemoteSource):
    """Listens on ``GET /sdk/v1/stream`` and fetches the ruleset on each announcement.

    - On connect the server announces its current version; the source fetches if the etag
      differs from its own, so nothing is missed while disconnected.
    - Heartbeat comments (and any event) confirm freshness; a connection silent for
      ``stream_read_timeout`` seconds is treated as dead and reopened.
    - Reconnects use exponential backoff with jitter (the server's ``retry:`` hint is the floor
      after a clean close). After ``fallback_after`` consecutive failed connections it polls
      every ``poll_interval`` and keeps trying the stream with its own backoff, capped at
      ``STREAM_RETRY_MAX`` (30 s): after an outage, changes arrive at stream latency again
      within one backoff step. A server without a stream endpoint (404/405/501) is polled and
      the stream tried again only after ``stream_retry_interval`` seconds.
    """

    thread_name = "flagapp-stream"

    def __init__(
        self,
        url: str,
        sdk_key: SdkKey,
        *,
        stream_read_timeout: float = 60.0,
        fallback_after: int = 3,
        stream_retry_interval: float = 300.0,
        **kwargs: object,
    ) -> None:
        super().__init__(url, sdk_key, **kwargs)  # type: ignore[arg-type]
        self.stream_read_timeout = stream_read_timeout
        self.fallback_after = max(1, fallback_after)
        self.stream_retry_interval = stream_retry_interval
        #: Reconnect attempts while polling as fall-back: capped at 30 s (and at
        #: ``backoff_max`` / ``stream_retry_interval`` when those are shorter).
        cap = max(self.backoff.base, min(STREAM_RETRY_MAX, self.backoff.maximum))
        cap = max(self.backoff.base, min(cap, stream_retry_interval))
        self.stream_backoff = Backoff(self.backoff.base, cap)
        self.retry_hint: float | None = None
        #: "stream" or "poll": visible for tests and diagnostics.
        self.mode = "stream"
        self.connections = 0

    def _run(self) -> None:
        failures = 0
        poll_until = 0.0
        while not self._stop.is_set():
            if time.monotonic() < poll_until:
                self.mode = "poll"
                delay = self.poll_once()
                if self._stop.wait(min(delay, max(0.0, poll_until - time.monotonic()) + 0.001)):
                    return
                continue
            self.mode = "stream"
            try:
                connected = self._stream_once()
            except AuthenticationError as exc:  # polling would be refused too: back off
                self._report(exc)
                if self._stop.wait(self.backoff.next()):
                    return
                continue
            except SourceError as exc:
                if self._stop.is_set():
                    return
                failures += 1
                no_endpoint = isinstance(exc, UnexpectedResponse) and exc.status in (404, 405, 501)
                if no_endpoint:  # a server without streaming is normal, not a failure
                    logger.warning(
                        "flagapp: no stream endpoint (%s); polling every %.0fs, stream retried"
                        " in %.0fs",
                        exc,
                        self.poll_interval,
                        self.stream_retry_interval,
                    )
                    failures = 0
                    poll_until = time.monotonic() + self.stream_retry_interval
                    continue
                self._report(exc)
                if failures >= self.fallback_after:
                    # Poll meanwhile, and try the stream again after a capped backoff step,
                    # so stream latency is back within one step after an outage (finding 5).
                    retry_in = self.stream_backoff.next()
                    if failures == self.fallback_after:
                        logger.warning(
                            "flagapp: stream unavailable (%s); polling every %.0fs and retrying"
                            " the stream with backoff (at most %.0fs)",
                            exc,
                            self.poll_interval,
                            self.stream_backoff.maximum,
                        )
                    poll_until = time.monotonic() + retry_in
                    continue
                if self._stop.wait(self.backoff.next()):
                    return
                continue
            # the server closed a working stream: reconnect soon, honouring its retry hint
            if connected:
                failures = 0
                self.stream_backoff.reset()
            delay = self.backoff.next()
            if self.retry_hint is not None:
                delay = max(delay, self.retry_hint)
            if self._stop.wait(delay):
                return

    def _stream_once(self) -> bool:
        """Hold one stream open until it ends; True if it was established.

        A connection that drops after being established is not reported: dropping is normal
        for long-lived HTTP (proxies, deploys), and if the server is really gone the reconnect
        fails and that is reported. A failed ruleset fetch is reported and ends the stream, so
        the reconnect's announcement retries it after a backoff.
        """
        established = False
        try:
            with self.client.stream(self.stream_read_timeout) as response:
                established = True
                self.connections += 1
                for event in iter_sse(response.iter_lines(), on_comment=self._on_heartbeat):
                    if self._stop.is_set():
                        return True
                    if event.retry is not None:
                        self.retry_hint = event.retry / 1000.0
                    if event.event == "snapshot" and not self._on_announcement(event.data):
                        return True
        except AuthenticationError:
            raise
        except SourceError:
            if not established:
                raise
        return established

    def _on_heartbeat(self, _comment: str) -> None:
        current = self.client.current
        if current is not None:
            self._deliver(current)

    def _on_announcement(self, data: str) -> bool:
        """Apply the announced snapshot's inline delta, or fetch it, unless we have it;
        False if the fetch failed."""
        try:
            announced = json.loads(data)
        except ValueError:
            announced = None
        if not isinstance(announced, dict):
            announced = {}
        etag = announced.get("etag")
        current = self.client.current
        if current is None or etag is None or etag != current.etag:
            current = None
            inline = announced.get("delta")
            if inline is not None and self.client.current is not None:
                try:
                    current = self.client.apply_delta(inline)
                except SourceError as exc:  # another base, or rejected: fetch instead
                    logger.info("flagapp: inline delta not applied (%s); fetching", exc)
                    current = None
            if current is None:
                try:
                    current, _changed = self.client.fetch()
                except SourceError as exc:
                    self._report(exc)
                    return False
        self.backoff.reset()
        self._deliver(current)
        return True
