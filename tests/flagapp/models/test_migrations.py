"""The committed migrations match the models (other helpers add models too: regenerate
with `make migrations` while unreleased).

makemigrations runs in a subprocess: the test run itself disables migrations
(pytest-django --nomigrations), which makemigrations cannot work with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flagapp.migrations

ROOT = Path(__file__).resolve().parents[3]


def test_makemigrations__check__nothing_to_do() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "FLAGAPP_TEST_DB": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "django", "makemigrations", "flagapp", "--check", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"models and migrations differ; run `make migrations`:\n{proc.stdout}{proc.stderr}"
    )


def test_migrations__single_initial__while_unreleased() -> None:
    files = sorted(p.name for p in Path(flagapp.migrations.__file__).parent.glob("0*.py"))
    assert files == ["0001_initial.py"]
