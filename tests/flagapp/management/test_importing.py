"""flagapp.management.importing: both import commands name a missing user or change request
by its option and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from flagapp.models import Flag

pytestmark = pytest.mark.django_db

FLAG = {
    "name": "Import args",
    "kind": "boolean",
    "type": "ops",
    "owner": "platform",
    "variants": [{"key": "on", "value": True}, {"key": "off", "value": False}],
}
DOC = {"flagapp": 1, "flags": {"ui.import-args": FLAG}}


@pytest.fixture
def source(tmp_path: Path) -> str:
    Group.objects.get_or_create(name="platform")
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DOC))
    return str(path)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--user", "ghost", "--user: no user 'ghost'"), ("--change-request", "987654", "#987654")],
)
def test_flagapp_import__unknown_user_or_change_request__refused_naming_the_option(
    source: str, option: str, value: str, message: str
) -> None:
    with pytest.raises(CommandError, match=option) as info:
        call_command("flagapp_import", source, "--reason", "r", option, value)
    assert message in str(info.value)
    assert not Flag.objects.filter(key="ui.import-args").exists()


def test_flagapp_import_waffle__unknown_user__refused_naming_the_option() -> None:
    pytest.importorskip("waffle")
    Group.objects.get_or_create(name="platform")
    with pytest.raises(CommandError, match="--user: no user 'ghost'"):
        call_command(
            "flagapp_import_waffle", "--reason", "r", "--owner", "platform", "--user", "ghost"
        )


def test_flagapp_import__refused_document__every_field_on_its_own_line(
    source: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**DOC, "flags": {"ui.import-args": {**FLAG, "kind": "colour"}}}))
    with pytest.raises(CommandError) as info:
        call_command("flagapp_import", str(bad), "--reason", "r")
    text = str(info.value)
    assert text.startswith("import refused, nothing was written:\n  ")
    assert "ui.import-args" in text and "kind" in text
    assert not Flag.objects.filter(key="ui.import-args").exists()


def test_flagapp_import__known_user__imports(source: str) -> None:
    """The control for the refusals above: the same file with no bad option is imported."""
    call_command("flagapp_import", source, "--reason", "r")
    assert Flag.objects.filter(key="ui.import-args").exists()
