"""Fixtures of the live Prometheus tests (test_prometheus_live.py, test_django_views_live.py):
a flagapp server (uvicorn, two workers, this test's PostgreSQL database, metrics in a
multiprocess directory) and Debian's Prometheus scraping it every second. The helpers the
two tests share are in ``live_rollout.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.faults.support import Server, free_port, wait_until
from tests.flagapp.metrics.live_rollout import SCRAPE_INTERVAL, TOKEN, Prometheus


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "Debian's prometheus binary is not installed (apt-get install prometheus; "
            ".ci/run installs it)"
        )
    if connection.vendor != "postgresql":
        pytest.skip("the live server process needs FLAGAPP_TEST_DB=postgres")
    return binary


@pytest.fixture
def server_settings_lines() -> str:
    """Settings appended to the server's module (a test module overrides this fixture)."""
    return ""


@pytest.fixture
def flagapp_server(
    prometheus_binary: str, tmp_path: Path, server_settings_lines: str
) -> Iterator[Server]:
    """uvicorn, two workers, on this test's database, metrics in a multiprocess dir."""
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    module = f"flagapp_metrics_live_{uuid.uuid4().hex[:8]}"
    (settings_dir / f"{module}.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "DATABASES['default']['CONN_MAX_AGE'] = 0\n"
        "FLAGAPP = {**FLAGAPP, 'METRICS_ALLOW': [], "
        f"'METRICS_TOKEN': {TOKEN!r}, 'CACHE_CHECK_INTERVAL': 0.5}}\n" + server_settings_lines
    )
    env = {
        "DJANGO_SETTINGS_MODULE": module,
        "FLAGAPP_TEST_DB": "postgres",
        "FLAGAPP_TEST_PG_NAME": str(connection.settings_dict["NAME"]),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    server = Server("flagapp.asgi:application", env, workers=2, cwd=settings_dir)
    try:
        server.wait_ready(timeout=90)
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(
    prometheus_binary: str, flagapp_server: Server, tmp_path: Path
) -> Iterator[Prometheus]:
    """Debian's Prometheus on loopback, scraping ``flagapp_server`` every second."""
    port = free_port()
    target = flagapp_server.url.removeprefix("http://")
    (tmp_path / "token").write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: flagapp\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        f"      credentials_file: {tmp_path / 'token'}\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    log = Path(tempfile.mkstemp(prefix="flagapp-prometheus-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        ready = wait_until(
            lambda: httpx.get(f"{prom.url}/-/ready", timeout=1).status_code == 200, 30, 0.1
        )
        assert ready is not None, f"prometheus not ready:\n{log.read_text()[-3000:]}"
        up = wait_until(lambda: prom.scalar('up{job="flagapp"}') == 1.0, 30, 0.2)
        assert up is not None, f"target never up: {prom.query('up')}\n{log.read_text()[-3000:]}"
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
