"""Redis faults: the shared cache and the announcement channel go away for a while.

docs/deploy.md promises that instances converge within ``CACHE_CHECK_INTERVAL`` even when
an announcement is lost. Here Redis is partitioned from the server (the fault proxy swallows
every byte, open connections are cut) while ``manage.py`` changes a flag directly; SDK
requests must keep being answered meanwhile (never a 500), and once Redis is back the
change must be served within the check interval plus a margin.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .freshness_support import KILL_SCRIPT, all_disabled
from .helpers import ofrep
from .proxy import FaultProxy
from .support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

PARTITION_S = 4.0
#: Redis calls are bounded by the cache's socket timeouts (1 s, tests/faults/fault_settings.py
#: and docs/deploy.md): an answer may wait for one of them, plus scheduling on a busy machine.
CACHE_CHECK_INTERVAL = 1.0


def test_redis_partition__change_made_meanwhile__answers_continue_and_served_after_heal(
    deployment: Any,
) -> None:
    dep = deployment()
    with FaultProxy("127.0.0.1", 6379) as redis_proxy:
        server = dep.server(
            workers=1,
            via_proxy=False,
            FAULTS_REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}/0",
        )
        for _ in range(10):
            assert ofrep(server.url, dep.sdk_headers).status_code == 200
        statuses: Counter[Any] = Counter()
        slowest = [0.0]
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    statuses[ofrep(server.url, dep.sdk_headers, timeout=30).status_code] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                slowest[0] = max(slowest[0], time.monotonic() - start)
                time.sleep(0.05)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            redis_proxy.blackhole(True)
            redis_proxy.cut_all()
            dep.manage("shell", "-c", KILL_SCRIPT.format(n=1))  # straight to Redis and PG
            time.sleep(PARTITION_S)
        finally:
            redis_proxy.pass_through()
            healed = wait_until(lambda: all_disabled(server.url, dep.sdk_headers), timeout=8)
            stop.set()
            for t in threads:
                t.join(timeout=60)
        FIGURES.add(
            f"Redis partition {PARTITION_S:.0f} s, change meanwhile",
            faults=redis_proxy.faults,
            changes_made=1,
            changes_served=int(healed is not None),
            converge_s=healed,
            note=f"OFREP during: {dict(statuses)}, slowest {slowest[0]:.1f} s",
        )
        assert not {s for s in statuses if s != 200}, statuses
        assert slowest[0] <= 3.0, f"an OFREP answer took {slowest[0]:.1f} s during the partition"
        assert healed is not None and healed <= CACHE_CHECK_INTERVAL + 2.0, healed
