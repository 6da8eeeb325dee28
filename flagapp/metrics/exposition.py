"""The Prometheus exposition: what ``GET /metrics`` answers (``scrape``).

One process serves its own registry; with ``PROMETHEUS_MULTIPROC_DIR`` set, the files of every
process are summed (and the live-gauge files of dead processes reaped first, so a crashed
worker's open streams stop counting). The snapshot version of each environment is read from
the database at scrape time, the truth whichever process published. prometheus-client is
imported only here and when a metric is first recorded (the optional ``metrics`` extra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.models import Max

from flagapp.models import Snapshot

from .config import multiprocess_dir

__all__ = ["scrape"]

logger = logging.getLogger("flagapp.metrics")


class _SnapshotCollector:
    """Read at scrape time from the database (the truth, whichever process published):
    the newest published version of each environment and when it was published."""

    def collect(self) -> Iterator[Any]:
        # prometheus-client is the optional "metrics" extra: imported when a scrape runs.
        from prometheus_client.core import GaugeMetricFamily

        version = GaugeMetricFamily(
            "flagapp_snapshot_version",
            "Newest published snapshot version per environment.",
            labels=["environment"],
        )
        at = GaugeMetricFamily(
            "flagapp_snapshot_published_timestamp_seconds",
            "When the newest snapshot of each environment was published (Unix time).",
            labels=["environment"],
        )
        try:
            rows = list(
                Snapshot.objects.values("environment__key")
                .annotate(version=Max("version"), at=Max("created_at"))
                .order_by("environment__key")
            )
        except DatabaseError:
            logger.warning("flagapp /metrics: snapshot versions unavailable", exc_info=True)
            return
        for row in rows:
            version.add_metric([row["environment__key"]], float(row["version"]))
            at.add_metric([row["environment__key"]], row["at"].timestamp())
        yield version
        yield at


class _Forward:
    """A collector that yields another registry's metrics (single-process exposition)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def _reap_dead_processes(path: str) -> None:
    """Drop the ``live*`` gauge files of processes that are gone (a worker that crashed or
    was replaced): without this, their open streams would be counted for good. uvicorn has
    no child-exit hook to call ``mark_process_dead`` from, so the scrape does it."""
    from prometheus_client import multiprocess

    mp: Any = multiprocess  # prometheus-client's multiprocess module is not annotated
    for name in os.listdir(path):
        if not (name.startswith("gauge_live") and name.endswith(".db")):
            continue
        try:
            pid = int(name.rsplit("_", 1)[1][:-3])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mp.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, another user's


def scrape(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when ``accept`` asks for it)."""
    from prometheus_client import REGISTRY, CollectorRegistry, exposition

    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        if not os.path.isdir(path):
            raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {path!r} is not a directory")
        _reap_dead_processes(path)
        mp: Any = multiprocess  # not annotated
        mp.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(_SnapshotCollector())
    encoder, content_type = exposition.choose_encoder(accept or "")
    return encoder(registry), content_type
