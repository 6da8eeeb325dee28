"""Readable history in real Chromium: the flag page's Timeline shows a rollout going from
10% to 50% and a rule added, in words; "Restore this version" puts 10% back through the
services; the audit log filters by environment. Screenshots:
``test-artifacts/history-diff-1400-light.png``, ``history-diff-390-dark.png``,
``history-restored-1400-light.png``, ``audit-log-1400-light.png``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import sampling, services
from flagapp.models import FlagState
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _split(on: int) -> dict[str, Any]:
    return {"rollout": {"weights": [{"variant": "on", "weight": on},
                                    {"variant": "off", "weight": 10_000 - on}]}}  # fmt: skip


@pytest.fixture
def setup() -> dict[str, Any]:
    sampling.reset()
    reset_flag_cache()
    owners = Group.objects.create(name="payments")
    env = services.create_environment(key="staging", name="Staging", actor=None, reason="setup")
    alice = h.user(
        "alice",
        perms=("flagapp.view_flag", "flagapp.change_flag", "flagapp.view_flagstate",
               "flagapp.change_flagstate"),
    )  # fmt: skip
    flag = services.create_flag(
        key="checkout.new-flow", name="New checkout", owner=owners,
        expires_on=timezone.localdate() + timezone.timedelta(days=30), actor=None, reason="s",
    )  # fmt: skip
    services.update_flag_state(
        flag, env, enabled=True, fallthrough=_split(1000), actor=alice, reason="start at 10%"
    )
    services.update_flag_state(
        flag, env, fallthrough=_split(5000), actor=alice, reason="metrics look good",
        rules=[{"id": "staff", "when": [{"attr": "is_staff", "op": "eq", "values": [True]}],
                "serve": {"variant": "on"}}],
    )  # fmt: skip
    return {"env": env, "flag": flag, "alice": alice}


def test_browser_history__timeline_diff_restore_and_audit_log(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag = setup["flag"]
    for width, scheme in ((390, "dark"), (1400, "light")):
        # JavaScript off: every page here works without it
        page = login(browser, base, "alice", width=width, height=1000, scheme=scheme,
                     javascript=False)  # fmt: skip
        visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
        page.click("#link-timeline")
        check_accessibility(page)
        timeline = page.locator("#timeline").inner_text()
        assert "fallthrough: on 10% · off 90% → on 50% · off 50%" in timeline
        assert "rule staff added at position 1: is_staff eq true → on" in timeline
        assert "metrics look good" in timeline and "alice" in timeline
        assert "{'" not in timeline
        screenshot(page, f"history-diff-{width}-{scheme}")
        if width == 390:
            page.context.close()
    # restore version 2 (10%, no rules) with a reason
    page.locator(".tl-entry", has_text="start at 10%").locator("text=Restore this version").click()
    check_accessibility(page)
    changes = page.locator("#restore-changes").inner_text()
    assert "fallthrough: on 50% · off 50% → on 10% · off 90%" in changes
    assert "rule staff removed" in changes
    page.fill("#id_reason", "rollback the ramp")
    page.click("#restore-submit")
    page.wait_for_selector("#timeline")
    check_accessibility(page)
    assert "version 2 restored" in page.locator(".messagelist").inner_text()
    newest = page.locator(".tl-entry").first.inner_text()
    assert "restore of version 2: rollback the ramp" in newest
    screenshot(page, "history-restored-1400-light")
    state = FlagState.objects.get(flag=flag, environment=setup["env"])
    assert state.fallthrough == _split(1000) and not state.rules.exists()
    # the audit log, filtered to the environment
    visit(page, f"{base}/admin/flagapp/flag/")
    page.click("#link-audit-log")
    check_accessibility(page)
    page.select_option("#id_environment", "staging")
    page.click("#audit-filters input[type=submit]")
    check_accessibility(page)
    rows = page.locator("#audit-log tbody").inner_text()
    assert "restore of version 2: rollback the ramp" in rows
    screenshot(page, "audit-log-1400-light")
    page.context.close()
