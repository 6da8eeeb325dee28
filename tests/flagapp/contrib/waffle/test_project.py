"""A project's existing waffle tests pass, unchanged, once flagapp.contrib.waffle replaces
waffle in INSTALLED_APPS (the issue's "done when").

Each run is a separate process: the compatibility app routes ``import waffle`` to flagapp
for the whole process, while this test process has the real django-waffle loaded for the
equivalence tests. The project is tests/flagapp/contrib/waffle/project (README.md there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent / "project"
ROOT = Path(__file__).resolve().parents[4]


def run(
    settings: str, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": settings,
    }
    env.pop("FLAGAPP_TEST_DB", None)  # SQLite in memory: nothing shared with other runs
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize(
    ("settings", "module"),
    [("settings_waffle", "waffle"), ("settings_compat", "flagapp.contrib.waffle")],
)
def test_project_waffle_tests__real_waffle_then_compat_app__all_pass(
    settings: str, module: str
) -> None:
    result = run(settings, "-m", "django", "test", "shop", "-v", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 11 tests" in result.stderr and "\nOK" in result.stderr
    assert f"WAFFLE_MODULE {module}\n" in result.stdout


def test_compat_app__import_waffle__same_modules_and_clear_error_for_models() -> None:
    result = run("settings_compat", "check_shim.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SAME_PACKAGE True" in result.stdout
    assert "SAME_DECORATORS True" in result.stdout
    assert "SPEC flagapp.contrib.waffle\n" in result.stdout  # its own identity is kept
    assert "MODELS waffle.models is not provided by flagapp.contrib.waffle" in result.stdout


def test_compat_app__installed_next_to_waffle__refused() -> None:
    result = run("settings_both", "-c", "import django; django.setup()")
    assert result.returncode != 0
    assert "INSTALLED_APPS has both 'waffle' and 'flagapp.contrib.waffle'" in result.stderr


def test_project_migration__import_then_swap__same_answers_from_the_database(
    tmp_path: Path,
) -> None:
    """The whole path on one SQLite file: waffle answers, the import, the app swap, and the
    same answers through ``import waffle`` now served by flagapp from published snapshots."""
    db = tmp_path / "shop.sqlite3"
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    env_db = {"SHOP_DB": str(db)}
    first = run("settings_waffle", "data_check.py", "before", str(before), extra_env=env_db)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "11 created" in first.stdout  # 9 flags, 1 environment, 1 group segment
    second = run("settings_compat", "data_check.py", "after", str(after), extra_env=env_db)
    assert second.returncode == 0, second.stdout + second.stderr
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    assert (old.pop("module"), new.pop("module")) == ("waffle", "flagapp.contrib.waffle")
    assert new == old
    assert old["ann/en"]["staff_only"] is True and old["bob/en"]["beta_group"] is True
    assert old["anonymous/de"]["german"] is True and old["ann/en"]["killed"] is False


RECEIVER_CHECK = (
    "import django; django.setup()\n"
    "import flagapp.contrib.waffle\n"
    "from django.test.signals import setting_changed\n"
    "uids = [key[0] for key, *_ in setting_changed.receivers]\n"
    "print('CONNECTED', 'flagapp.contrib.waffle.settings' in uids)\n"
)


@pytest.mark.parametrize(
    ("settings", "connected"), [("settings_waffle", False), ("settings_compat", True)]
)
def test_compat_settings_receiver__connected_by_app_ready_not_by_import(
    settings: str, connected: bool
) -> None:
    """Issue 12: every receiver is connected in an AppConfig's ``ready()``. Importing
    flagapp.contrib.waffle without its app installed connects nothing; installing the app
    connects the WAFFLE_* settings-cache receiver."""
    result = run(settings, "-c", RECEIVER_CHECK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"CONNECTED {connected}" in result.stdout
