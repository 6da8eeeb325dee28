"""Issue 10, finding 8 (PostgreSQL under ASGI): the documented settings keep connections
bounded.

Before: docs/deploy.md said ``CONN_MAX_AGE: 600``; under uvicorn each request opened a
connection that was never reused, and four workers exhausted ``max_connections=100``. The
fault settings are what docs/deploy.md now recommends (Django's psycopg pool, ``max_size``
8 per worker): 240 management-API reads (each queries) from 8 clients against 2 workers
must leave at most 2 x 8 connections (+ slack for the check itself).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .helpers import STATE_PATH

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

REQUESTS = 240
CLIENTS = 8
BOUND = 2 * 8 + 2


def test_pg_under_asgi__documented_pool_settings__connections_bounded(shared: Any) -> None:
    dep, server = shared
    statuses: Counter[int] = Counter()
    peak = [0]

    def count() -> int:
        return int(
            dep.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )[0][0]
        )

    def client(n: int) -> None:
        with httpx.Client(timeout=30) as c:
            for i in range(REQUESTS // CLIENTS):
                path = STATE_PATH if i % 2 else "/api/v1/flags/"
                statuses[c.get(server.url + path, headers=dep.api_headers).status_code] += 1
                if i % 10 == 0:
                    peak[0] = max(peak[0], count())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    after = count()
    FIGURES.add(
        "PostgreSQL connections, 240 API reads, 2 workers (pool)",
        note=f"peak {peak[0]}, after {after}, bound {BOUND}; {dict(statuses)}",
    )
    assert statuses == Counter({200: REQUESTS}), statuses
    assert max(peak[0], after) <= BOUND, (peak[0], after)
