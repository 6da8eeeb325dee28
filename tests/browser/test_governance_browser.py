"""A real browser drives the admin through the two-person rule and the kill switch.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright's Python package
against pytest-django's ``live_server``: user A edits a production flag and gets a change
request showing its blast radius; user B approves it; the flag serves the new value; user A
turns the flag off with the kill switch and a reason. Every page is checked with axe-core
(``support.check_accessibility``). Screenshots are kept in ``test-artifacts/`` (gitignored).
Skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import sampling, services
from flagapp.evaluation import evaluate
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


def _serve(context: dict[str, Any]) -> Any:
    reset_flag_cache()
    return evaluate("checkout.new-flow", False, context, environment="production")


def test_browser__edit_approve_serve_and_kill_switch(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    base = live_server.url
    flag: Flag = setup["flag"]
    prod: Environment = setup["prod"]
    state = FlagState.objects.get(flag=flag, environment=prod)
    assert _serve({"targetingKey": "user-1"}).value is False

    # User A edits the production flag: serve "on" to everyone.
    alice = login(browser, base, setup["alice"], height=1000)
    visit(alice, f"{base}/admin/flagapp/flagstate/{state.pk}/change/")
    alice.fill("#id_fallthrough", "on")
    alice.fill("#id_reason", "launch the new checkout to everyone")
    alice.click("input[name=_save]")
    link = alice.locator("#cr-created")
    link.wait_for()
    check_accessibility(alice)
    assert FlagState.objects.get(pk=state.pk).fallthrough == {"variant": "off"}  # unsaved
    link.click()
    radius = alice.locator("#cr-blast-radius")
    radius.wait_for()
    check_accessibility(alice)
    # the 40 stored contexts, plus any this test's own evaluation added to the sample by then
    stored = ChangeRequest.objects.get().blast_radius
    sampled = stored["sampled"]
    assert sampled >= 40 and stored["changed"] == sampled
    assert f"{sampled} of {sampled} recent" in " ".join(radius.inner_text().split())
    assert "off -> on" in radius.inner_text()
    assert alice.locator("#cr-approve").count() == 0  # the author cannot approve
    screenshot(alice, "governance-1-change-request")
    cr = ChangeRequest.objects.get()
    assert (cr.status, cr.author.username) == ("pending", "alice")

    # User B approves it.
    bob = login(browser, base, setup["bob"], height=1000)
    visit(bob, f"{base}/admin/flagapp/changerequest/")
    bob.click(f"text={flag.key}")
    bob.locator("#cr-comment").wait_for()
    check_accessibility(bob)
    bob.fill("#cr-comment", "checked the blast radius")
    bob.click("#cr-approve")
    bob.locator("#cr-status").wait_for()
    check_accessibility(bob)
    assert bob.locator("#cr-status").inner_text().strip().lower() == "applied"
    assert "approved and applied" in bob.content()
    screenshot(bob, "governance-2-approved")

    # The flag now serves the new value.
    served = _serve({"targetingKey": "user-1"})
    assert (served.value, served.variant) == (True, "on")

    # User A pulls the kill switch in production, with a reason, no approval needed.
    visit(alice, f"{base}/admin/flagapp/flag/")
    alice.check(f"input[name=_selected_action][value='{flag.pk}']")
    alice.select_option("select[name=action]", "kill_switch_production")
    alice.click("button[name=index]")
    alice.locator("#id_reason").wait_for()
    check_accessibility(alice)
    alice.fill("#id_reason", "incident 4711: payment errors")
    alice.click("input[type=submit][value='Turn off in production']")
    alice.locator(".messagelist").wait_for()
    check_accessibility(alice)
    assert "Kill switch in production: 1 done." in alice.content()
    screenshot(alice, "governance-3-kill-switch")
    killed = _serve({"targetingKey": "user-1"})
    assert (killed.value, killed.reason) == (False, "DISABLED")
    last = FlagState.objects.get(pk=state.pk).history.order_by("-history_id").first()
    assert (last.history_user.username, last.history_change_reason) == (
        "alice",
        "incident 4711: payment errors",
    )
