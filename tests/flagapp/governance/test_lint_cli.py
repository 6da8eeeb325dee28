"""The CI commands as a pipeline runs them: ``manage.py`` in a subprocess, exit statuses.

The example project on a fresh SQLite file: migrate, load the demo data, then
``flagapp_lint --json`` (the demo owner groups have no members: findings, exit 1),
``flagapp_code_refs`` over the example project's own code, and ``flagapp_run_tasks``
(the embedded way to run the periodic work without a broker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MANAGE = ROOT / "example_project" / "manage.py"


def _manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
    }
    env.pop("CELERY_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lintcli")
    for args in (("migrate", "--noinput", "-v", "0"), ("flagapp_demo",)):
        done = _manage(path, *args)
        assert done.returncode == 0, done.stderr[-2000:]
    return path


def test_lint_cli__demo_data__exit_one_with_json_findings(demo_db: Path) -> None:
    done = _manage(demo_db, "flagapp_lint", "--json")
    assert done.returncode == 1, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    assert {f["rule"] for f in doc["findings"]} >= {"unowned"}
    assert "finding(s)" in done.stderr


def test_lint_cli__all_rules_skipped__exit_zero(demo_db: Path) -> None:
    skips = [
        a
        for rule in ("expired", "no-expiry", "unowned", "stale", "ready-to-remove")
        for a in ("--skip", rule)
    ]
    done = _manage(demo_db, "flagapp_lint", *skips)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "no findings" in done.stdout


def test_code_refs_cli__example_project__references_found(demo_db: Path) -> None:
    done = _manage(demo_db, "flagapp_code_refs", str(ROOT / "example_project"), "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["references"] > 0
    assert done.returncode == (0 if doc["ok"] else 1)


def test_run_tasks_cli__embedded_default__every_task_runs(demo_db: Path) -> None:
    done = _manage(demo_db, "flagapp_run_tasks")
    assert done.returncode == 0, done.stderr[-2000:]
    names = {line.split(":", 1)[0] for line in done.stdout.splitlines() if ": " in line}
    assert {"fold_evaluation_counts", "send_expiry_reminders", "stale_flag_report"} <= names
