"""Issue 10, finding 8: the example deployment starts from anywhere and its SQLite default
answers concurrent writers with 409, never 500.

Real uvicorn processes serving ``example_project`` (its own ``asgi.py``, its own settings) on
a SQLite file, driven over HTTP. No PostgreSQL or Redis needed.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .support import REPO, SETUP_SCRIPT, Server, manage, running

pytestmark = [pytest.mark.faults]

EXAMPLE = REPO / "example_project"


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A migrated example-project SQLite file with the setup data, made by one ``manage.py``
    process (copied per test), and the setup's tokens."""
    path = tmp_path_factory.mktemp("example-db") / "db.sqlite3"
    script = "from django.core.management import call_command\n"
    script += "call_command('migrate', interactive=False, verbosity=0)\n" + SETUP_SCRIPT
    proc = manage(
        "shell",
        "-c",
        script,
        env={"DJANGO_SETTINGS_MODULE": "example_project.settings", "DATABASE_PATH": str(path)},
        timeout=240,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SETUP"))
    return path, dict(json.loads(line[len("SETUP") :]))


@pytest.fixture
def example_env(migrated_sqlite: tuple[Path, dict[str, str]], tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite[0], db)
    return {"DJANGO_SETTINGS_MODULE": "example_project.settings", "DATABASE_PATH": str(db)}


@pytest.mark.parametrize(
    ("cwd", "app", "pythonpath"),
    [
        pytest.param(REPO, "example_project.asgi:application", True, id="repo-root"),
        # An operator with the project on PYTHONPATH (or installed) starting from its
        # directory: before the rename, example_project/celery.py shadowed the celery
        # package and the import of example_project crashed uvicorn.
        pytest.param(
            EXAMPLE, "example_project.asgi:application", True, id="inside-with-pythonpath"
        ),
        pytest.param(EXAMPLE, "asgi:application", False, id="inside-module-path"),
    ],
)
def test_example_asgi__started_from_any_directory__serves_pages(
    example_env: dict[str, str], cwd: Path, app: str, pythonpath: bool
) -> None:
    """uvicorn must start the example project wherever the operator stands, and serve both
    a middleware page (the admin login) and an SDK path (fast path, 401 without a key)."""
    server = Server(app, example_env, cwd=cwd, pythonpath=pythonpath)
    with running(server, "/admin/login/"):
        login = httpx.get(server.url + "/admin/login/", timeout=10)
        assert login.status_code == 200, login.text[:500]
        assert "csrfmiddlewaretoken" in login.text
        sdk = httpx.get(server.url + "/sdk/v1/ruleset", timeout=10)
        assert sdk.status_code == 401, sdk.text[:500]


WRITERS = 100


def test_sqlite_default__100_concurrent_same_version_writes__only_200_or_409(
    example_env: dict[str, str], migrated_sqlite: tuple[Path, dict[str, str]]
) -> None:
    """The embedded default (SQLite file) under 2 uvicorn workers: 100 writers PATCH the same
    flag state naming the same version at once. Exactly one wins (200); every other writer
    learns of the conflict (409). A "database is locked" 500 (26 of 100 before the fix:
    deferred transactions cannot upgrade to a write lock while another writer holds it)
    would tell a client nothing about whether its change was saved."""
    data = migrated_sqlite[1]
    server = Server("example_project.asgi:application", example_env, workers=2)
    with running(server):
        headers = {"Authorization": f"Token {data['api_token']}"}
        url = f"{server.url}/api/v1/flags/faults.kill-switch/environments/production/"
        version = httpx.get(url, headers=headers, timeout=30).json()["version"]
        barrier = threading.Barrier(WRITERS)
        results: list[Any] = [None] * WRITERS

        def write(i: int) -> None:
            with httpx.Client(timeout=60) as client:
                barrier.wait(timeout=60)
                try:
                    results[i] = client.patch(
                        url,
                        json={"rules": [{"id": f"w{i}", "when": [], "serve": {"variant": "on"}}]},
                        headers={
                            **headers,
                            "If-Match": f'"{version}"',
                            "X-Change-Reason": f"writer {i}",
                        },
                    )
                except httpx.HTTPError as exc:
                    results[i] = exc

        threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        statuses = Counter(
            r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results
        )
        FIGURES.add(
            "sqlite: 100 concurrent same-version writes",
            faults=0,
            changes_made=statuses.get(200, 0),
            note=" ".join(f"{k}x{v}" for k, v in sorted(statuses.items(), key=str)),
        )
        bad = [
            (r.status_code, r.text[:200]) if isinstance(r, httpx.Response) else repr(r)
            for r in results
            if not (isinstance(r, httpx.Response) and r.status_code in (200, 409))
        ]
        assert not bad, (statuses, bad[:3], server.output()[-2000:])
        assert statuses[200] == 1, statuses
        after = httpx.get(url, headers=headers, timeout=30).json()
        assert after["version"] == version + 1
