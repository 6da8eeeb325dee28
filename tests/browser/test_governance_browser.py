"""A real browser drives the admin through the two-person rule and the kill switch.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright's Python package
against pytest-django's ``live_server``: user A edits a production flag and gets a change
request showing its blast radius; user B approves it; the flag serves the new value; user A
turns the flag off with the kill switch and a reason. Screenshots are kept in
``test-artifacts/`` (gitignored). Skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from flagapp import sampling, services
from flagapp.evaluation import evaluate
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("FLAGAPP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # synchronous and safe, so tell Django not to refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=LAUNCH_ARGS,
            headless=True,
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def setup() -> dict[str, Any]:
    sampling.reset()
    reset_flag_cache()
    owners = Group.objects.create(name="checkout")
    prod = services.create_environment(
        key="production", name="Production", protected=True, actor=None, reason="setup"
    )
    flag = services.create_flag(
        key="checkout.new-flow",
        name="New checkout flow",
        owner=owners,
        expires_on=timezone.localdate() + timezone.timedelta(days=30),
        actor=None,
        reason="setup",
    )
    from flagapp.policy import GrantedApproval

    services.update_flag_state(
        flag,
        prod,
        actor=None,
        reason="serve off",
        enabled=True,
        fallthrough={"variant": "off"},
        change_request=GrantedApproval(),
    )
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=prod,
            context={"targetingKey": f"user-{i}", "plan": "free"},
            recorded_at=timezone.now(),
        )
        for i in range(40)
    )
    alice = h.user(
        "alice",
        perms=(
            "flagapp.view_flag",
            "flagapp.change_flag",
            "flagapp.view_flagstate",
            "flagapp.change_flagstate",
            "flagapp.change_protected_environment",
            "flagapp.view_changerequest",
        ),
    )
    bob = h.user("bob", perms=("flagapp.approve_changerequest", "flagapp.view_changerequest"))
    return {"prod": prod, "flag": flag, "alice": alice, "bob": bob}


def _login(browser: Any, base: str, user: User) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    return page


def _serve(context: dict[str, Any]) -> Any:
    reset_flag_cache()
    return evaluate("checkout.new-flow", False, context, environment="production")


def test_browser__edit_approve_serve_and_kill_switch(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server.url
    flag: Flag = setup["flag"]
    prod: Environment = setup["prod"]
    state = FlagState.objects.get(flag=flag, environment=prod)
    assert _serve({"targetingKey": "user-1"}).value is False

    # User A edits the production flag: serve "on" to everyone.
    alice = _login(browser, base, setup["alice"])
    alice.goto(f"{base}/admin/flagapp/flagstate/{state.pk}/change/")
    alice.fill("#id_fallthrough", "on")
    alice.fill("#id_reason", "launch the new checkout to everyone")
    alice.click("input[name=_save]")
    link = alice.locator("#cr-created")
    link.wait_for()
    assert FlagState.objects.get(pk=state.pk).fallthrough == {"variant": "off"}  # unsaved
    link.click()
    radius = alice.locator("#cr-blast-radius")
    radius.wait_for()
    # the 40 stored contexts, plus any this test's own evaluation added to the sample by then
    stored = ChangeRequest.objects.get().blast_radius
    sampled = stored["sampled"]
    assert sampled >= 40 and stored["changed"] == sampled
    assert f"{sampled} of {sampled} recent" in " ".join(radius.inner_text().split())
    assert "off -> on" in radius.inner_text()
    assert alice.locator("#cr-approve").count() == 0  # the author cannot approve
    alice.screenshot(path=str(ARTIFACTS / "governance-1-change-request.png"), full_page=True)
    cr = ChangeRequest.objects.get()
    assert (cr.status, cr.author.username) == ("pending", "alice")

    # User B approves it.
    bob = _login(browser, base, setup["bob"])
    bob.goto(f"{base}/admin/flagapp/changerequest/")
    bob.click(f"text={flag.key}")
    bob.fill("#cr-comment", "checked the blast radius")
    bob.click("#cr-approve")
    bob.locator("#cr-status").wait_for()
    assert bob.locator("#cr-status").inner_text().strip().lower() == "applied"
    assert "approved and applied" in bob.content()
    bob.screenshot(path=str(ARTIFACTS / "governance-2-approved.png"), full_page=True)

    # The flag now serves the new value.
    served = _serve({"targetingKey": "user-1"})
    assert (served.value, served.variant) == (True, "on")

    # User A pulls the kill switch in production, with a reason, no approval needed.
    alice.goto(f"{base}/admin/flagapp/flag/")
    alice.check(f"input[name=_selected_action][value='{flag.pk}']")
    alice.select_option("select[name=action]", "kill_switch_production")
    alice.click("button[name=index]")
    alice.fill("#id_reason", "incident 4711: payment errors")
    alice.click("input[type=submit][value='Turn off in production']")
    alice.locator(".messagelist").wait_for()
    assert "Kill switch in production: 1 done." in alice.content()
    alice.screenshot(path=str(ARTIFACTS / "governance-3-kill-switch.png"), full_page=True)
    killed = _serve({"targetingKey": "user-1"})
    assert (killed.value, killed.reason) == (False, "DISABLED")
    last = FlagState.objects.get(pk=state.pk).history.order_by("-history_id").first()
    assert (last.history_user.username, last.history_change_reason) == (
        "alice",
        "incident 4711: payment errors",
    )
