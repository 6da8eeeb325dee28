"""The last-known-good file: atomic writes, multi-process safety, defect tolerance."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openfeature_provider.engine import parse_ruleset
from openfeature_provider.lkg import LastKnownGood
from tests.openfeature_provider.conftest import make_doc


def test_save_then_load__round_trip_with_etag_and_time(tmp_path: Path) -> None:
    lkg = LastKnownGood(tmp_path / "sub" / "flags.json")
    assert lkg.load() is None  # absent: no warning needed, just nothing
    assert lkg.save(parse_ruleset(make_doc(3)))
    loaded = lkg.load()
    assert loaded is not None
    assert (loaded.ruleset.version, loaded.etag) == (3, "sha256:v3")
    assert loaded.ruleset.flags.keys() == parse_ruleset(make_doc(3)).flags.keys()
    assert 0 <= loaded.age < 60
    assert [p.name for p in (tmp_path / "sub").iterdir() if p.suffix == ".tmp"] == []


def test_save__older_version_than_file__replaces_it(tmp_path: Path) -> None:
    """The server's snapshot always wins (issue 11 finding 6): versions restart when a database
    is restored or an environment re-created, and a file at version 500 used to pin the
    provider to it forever."""
    lkg = LastKnownGood(tmp_path / "flags.json")
    lkg.save(parse_ruleset(make_doc(500)))
    assert lkg.save(parse_ruleset(make_doc(3))) is True
    loaded = lkg.load()
    assert loaded is not None and loaded.ruleset.version == 3


def test_load__saved_at_in_the_future__counts_as_now(tmp_path: Path) -> None:
    """A clock that was ahead must not keep the file "fresh" (it never went STALE before)."""
    path = tmp_path / "flags.json"
    LastKnownGood(path).save(parse_ruleset(make_doc(3)))
    doc = json.loads(path.read_bytes())
    doc["saved_at"] = time.time() + 365 * 86400
    path.write_text(json.dumps(doc))
    loaded = LastKnownGood(path).load()
    assert loaded is not None
    assert loaded.saved_at <= time.time()
    assert loaded.age >= 0


PROD_KEY = "fa_production_" + "A" * 40
PROD_KEY_2 = "fa_production_" + "B" * 40
STAGING_KEY = "fa_staging_" + "C" * 40
SERVER = "https://flags.example.com"


def _env_doc(environment: str, version: int = 1) -> dict[str, object]:
    return {**make_doc(version), "environment": environment}


def test_load__written_for_another_server__ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    LastKnownGood(path, server=SERVER, sdk_key=PROD_KEY).save(parse_ruleset(_env_doc("production")))
    with caplog.at_level(logging.WARNING, logger="flagapp.provider"):
        other = LastKnownGood(path, server="https://flags.other.example", sdk_key=PROD_KEY)
        assert other.load() is None
    assert any("another server" in r.getMessage() for r in caplog.records)
    same = LastKnownGood(path, server=SERVER + "/", sdk_key=PROD_KEY)  # trailing slash: same
    assert same.load() is not None


def test_load__staging_file_with_production_key__ignored(tmp_path: Path) -> None:
    """A staging snapshot is never served to a production key (the key names its environment)."""
    path = tmp_path / "flags.json"
    LastKnownGood(path, server=SERVER, sdk_key=STAGING_KEY).save(parse_ruleset(_env_doc("staging")))
    assert LastKnownGood(path, server=SERVER, sdk_key=PROD_KEY).load() is None
    assert LastKnownGood(path, server=SERVER, sdk_key=STAGING_KEY).load() is not None


def test_load__rotated_key_of_same_environment__served(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    LastKnownGood(path, server=SERVER, sdk_key=PROD_KEY).save(parse_ruleset(_env_doc("production")))
    loaded = LastKnownGood(path, server=SERVER, sdk_key=lambda: PROD_KEY_2).load()
    assert loaded is not None and loaded.ruleset.environment == "production"


def test_load__key_naming_no_environment__only_the_same_key(tmp_path: Path) -> None:
    """A key not in the fa_<environment>_ form cannot vouch for an environment: same key only."""
    path = tmp_path / "flags.json"
    LastKnownGood(path, server=SERVER, sdk_key="custom-key-1").save(parse_ruleset(make_doc()))
    assert LastKnownGood(path, server=SERVER, sdk_key="custom-key-2").load() is None
    assert LastKnownGood(path, server=SERVER, sdk_key="custom-key-1").load() is not None
    assert "custom-key-1" not in path.read_text()  # only a fingerprint is stored


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"lkg_format": 1, "etag": "x", "saved_at": 1, "ruleset": {"format": 1, "envi',
        b"not json at all",
        b'{"format": 1, "environment": "p", "version": 1, "etag": "e", "flags": {}}',
        b'{"lkg_format": 99, "etag": "x", "saved_at": 1, "ruleset": {}}',
        b'{"lkg_format": 1, "etag": "x", "saved_at": "yesterday", "ruleset": {}}',
        b'{"lkg_format": 1, "etag": "x", "saved_at": 1, "ruleset": {"format": 2}}',
        b"[1, 2, 3]",
    ],
    ids=[
        "empty",
        "truncated",
        "not-json",
        "bare-ruleset",
        "other-format",
        "bad-time",
        "invalid-ruleset",
        "array",
    ],
)
def test_load__defective_file__ignored_with_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="flagapp.provider"):
        assert LastKnownGood(path).load() is None
    assert any("ignoring last-known-good" in r.getMessage() for r in caplog.records)


def test_save__unwritable_directory__raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        LastKnownGood(blocker / "flags.json").save(parse_ruleset(make_doc()))


_WRITER = """
import copy, json, sys
from openfeature_provider.engine import parse_ruleset
from openfeature_provider.lkg import LastKnownGood
path, template, start = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
lkg = LastKnownGood(path)
for v in range(start, 40, 4):
    doc = copy.deepcopy(template)
    doc["version"], doc["etag"] = v, f"sha256:v{v}"
    lkg.save(parse_ruleset(doc))
"""


def test_save__several_processes_share_path__file_always_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    template = tmp_path / "template.json"
    template.write_text(json.dumps(make_doc()))
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(template), str(start)], cwd=root
        )
        for start in range(1, 5)
    ]
    seen = set()
    deadline = time.monotonic() + 60
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if path.exists():
            doc = json.loads(path.read_bytes())  # never a partial file
            seen.add(doc["version"])
    for p in procs:
        assert p.wait(timeout=30) == 0
    loaded = LastKnownGood(path).load()
    assert loaded is not None and loaded.ruleset.version in range(1, 40)  # the last writer's
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save__new_file__owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    LastKnownGood(path).save(parse_ruleset(make_doc()))
    assert path.stat().st_mode & 0o777 == 0o600


def test_last_known_good__ruleset_kept_no_document__file_reads_back_the_same_ruleset(
    tmp_path: Path,
) -> None:
    # the provider keeps no decoded document (issue 17 item 4): the file is written flag by
    # flag from the ruleset itself and must read back as what was served
    from openfeature_provider.engine import evaluate, parse_ruleset

    doc = make_doc(7)
    ruleset = parse_ruleset(doc, keep_raw=False)
    assert ruleset.raw == {}
    lkg = LastKnownGood(tmp_path / "lkg.json")
    lkg.save(ruleset)
    loaded = lkg.load()
    assert loaded is not None
    assert loaded.ruleset == parse_ruleset(doc)
    for key in doc["flags"]:
        ctx = {"targetingKey": "u1", "plan": "pro"}
        assert evaluate(loaded.ruleset, key, ctx) == evaluate(ruleset, key, ctx)
    json.loads((tmp_path / "lkg.json").read_text())  # one well-formed JSON document
