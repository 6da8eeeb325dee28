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

from .test_governance_browser import ARTIFACTS, browser  # noqa: F401 - fixture

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


def _login(chromium: Any, base: str, width: int, scheme: str) -> Any:
    context = chromium.new_context(
        viewport={"width": width, "height": 1000}, color_scheme=scheme, java_script_enabled=False
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    return page


def test_browser_history__timeline_diff_restore_and_audit_log(
    browser: Any,  # noqa: F811 - the fixture
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server.url
    flag = setup["flag"]
    for width, scheme in ((390, "dark"), (1400, "light")):
        page = _login(browser, base, width, scheme)
        page.goto(f"{base}/admin/flagapp/flag/{flag.pk}/change/")
        page.click("#link-timeline")
        timeline = page.locator("#timeline").inner_text()
        assert "fallthrough: on 10% · off 90% → on 50% · off 50%" in timeline
        assert "rule staff added at position 1: is_staff eq true → on" in timeline
        assert "metrics look good" in timeline and "alice" in timeline
        assert "{'" not in timeline
        page.screenshot(path=str(ARTIFACTS / f"history-diff-{width}-{scheme}.png"), full_page=True)
        if width == 390:
            page.context.close()
    # restore version 2 (10%, no rules) with a reason
    page.locator(".tl-entry", has_text="start at 10%").locator("text=Restore this version").click()
    changes = page.locator("#restore-changes").inner_text()
    assert "fallthrough: on 50% · off 50% → on 10% · off 90%" in changes
    assert "rule staff removed" in changes
    page.fill("#id_reason", "rollback the ramp")
    page.click("#restore-submit")
    page.wait_for_selector("#timeline")
    assert "version 2 restored" in page.locator(".messagelist").inner_text()
    newest = page.locator(".tl-entry").first.inner_text()
    assert "restore of version 2: rollback the ramp" in newest
    page.screenshot(path=str(ARTIFACTS / "history-restored-1400-light.png"), full_page=True)
    state = FlagState.objects.get(flag=flag, environment=setup["env"])
    assert state.fallthrough == _split(1000) and not state.rules.exists()
    # the audit log, filtered to the environment
    page.goto(f"{base}/admin/flagapp/flag/")
    page.click("#link-audit-log")
    page.select_option("#id_environment", "staging")
    page.click("#audit-filters input[type=submit]")
    rows = page.locator("#audit-log tbody").inner_text()
    assert "restore of version 2: rollback the ramp" in rows
    page.screenshot(path=str(ARTIFACTS / "audit-log-1400-light.png"), full_page=True)
    page.context.close()
