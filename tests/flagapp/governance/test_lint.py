"""flagapp_lint: lists expired, unowned and stale flags and exits non-zero for CI."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from flagapp import sampling
from flagapp.governance.lint import lint
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_sampling() -> None:
    sampling.reset()


def _run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("flagapp_lint", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_lint__clean_inventory__exit_zero() -> None:
    team = Group.objects.create(name="checkout")
    h.user("dana", groups=(team,))
    h.flag("checkout.new.flow", team, expires_on=timezone.localdate() + dt.timedelta(days=30))
    code, out = _run()
    assert code == 0
    assert "no findings" in out


def test_lint__expired_unowned_stale__each_listed_and_exit_one() -> None:
    team = Group.objects.create(name="checkout")
    h.user("dana", groups=(team,))
    empty = Group.objects.create(name="ghosts")
    today = timezone.localdate()
    h.flag("checkout.old.flow", team, expires_on=today - dt.timedelta(days=3))
    h.flag("ghosts.ops.switch", empty, flag_type="ops")
    h.flag("checkout.no.expiry", team)
    h.flag("checkout.dusty.ops", team, flag_type="ops", created_days_ago=60)
    h.flag("checkout.archived.x", team, expires_on=today - dt.timedelta(days=3), archived=True)
    code, out = _run()
    assert code == 1
    lines = [line.split() for line in out.splitlines() if line.startswith(("checkout", "ghosts"))]
    assert [(parts[0], parts[1]) for parts in lines] == [
        ("checkout.dusty.ops", "stale"),
        ("checkout.no.expiry", "no-expiry"),
        ("checkout.old.flow", "expired"),
        ("ghosts.ops.switch", "unowned"),
    ]
    assert "4 finding(s)" in out


def test_lint__json_option__machine_readable_findings() -> None:
    empty = Group.objects.create(name="ghosts")
    h.flag("ghosts.ops.switch", empty, flag_type="ops")
    code, out = _run("--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["findings"] == [
        {
            "flag": "ghosts.ops.switch",
            "rule": "unowned",
            "message": "owner group 'ghosts' has no active member",
        }
    ]


def test_lint__skip_rule__finding_dropped() -> None:
    empty = Group.objects.create(name="ghosts")
    h.flag("ghosts.ops.switch", empty, flag_type="ops")
    assert _run("--skip", "unowned")[0] == 0


def test_lint__unknown_rule__value_error() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        lint(rules=["nonsense"])
