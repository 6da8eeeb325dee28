"""Rollout-plan drafts in real Chromium: a guardrail the service refuses comes back on its
own row and cell (not as a line at the top of the form) and nothing is saved; corrected, the
plan is stored through ``create_plan``; two people editing one draft: the second save,
made over the version the first wrote, is refused with the conflict named and the first
edit kept. axe-core on every page. Screenshots: ``test-artifacts/rollout-*.png``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import services
from flagapp.models import RolloutGuardrail, RolloutPlan
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup() -> dict[str, Any]:
    reset_flag_cache()
    owners = Group.objects.create(name="checkout")
    env = services.create_environment(key="staging", name="Staging", actor=None, reason="s")
    flag = services.create_flag(
        key="checkout.rollout", name="Rollout flag", owner=owners, actor=None, reason="s",
        expires_on=timezone.localdate() + timezone.timedelta(days=30),
    )  # fmt: skip
    admin = h.user("admin")
    admin.is_superuser = True
    admin.save()
    return {"env": env, "flag": flag}


def _save(page: Any) -> None:
    page.click("input[name=_continue]")
    page.wait_for_load_state("load")
    check_accessibility(page)


def test_browser_rollout_plan__guardrail_refused_on_its_row__then_saved(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    base = live_server.url
    flag, env = setup["flag"], setup["env"]
    page = login(browser, base, "admin", width=1400, height=1000, scheme="dark")
    visit(page, f"{base}/admin/flagapp/rolloutplan/add/")
    page.select_option("#id_flag", str(flag.pk))
    page.select_option("#id_environment", str(env.pk))
    page.fill("#id_treatment_variant", "on")
    page.fill("#id_control_variant", "off")
    page.fill("#id_steps", "[100, 1000, 10000]")
    page.get_by_text("Add another Rollout guardrail").click()
    page.select_option("#id_guardrails-0-metric", "latency")
    page.fill("#id_guardrails-0-event_key", "checkout")
    page.fill("#id_guardrails-0-percentile", "150")
    page.fill("#id_guardrails-0-threshold", "800")
    _save(page)

    error = page.locator("#id_guardrails-0-percentile_error")
    assert error.is_visible()
    assert error.inner_text().strip() == "must be in (0, 100]"
    assert "see the guardrail errors below" in page.locator(".errorlist.nonfield").inner_text()
    assert not RolloutPlan.objects.exists() and not RolloutGuardrail.objects.exists()
    screenshot(page, "rollout-guardrail-refused-1400-dark")

    page.fill("#id_guardrails-0-percentile", "99")
    _save(page)
    plan = RolloutPlan.objects.get()
    assert (plan.steps, plan.version) == ([100, 1000, 10000], 1)
    assert list(plan.guardrails.values_list("metric", "percentile")) == [("latency", 99.0)]
    assert f"/admin/flagapp/rolloutplan/{plan.pk}/change/" in page.url
    page.context.close()


def test_browser_rollout_plan__two_editors_one_draft__second_save_refused_first_kept(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    from flagapp.rollouts import controller

    base = live_server.url
    plan = controller.create_plan(
        setup["flag"], setup["env"], treatment="on", control="off", steps=[100, 10000]
    )
    url = f"{base}/admin/flagapp/rolloutplan/{plan.pk}/change/"
    first = login(browser, base, "admin", width=1400, height=1000)
    second = login(browser, base, "admin", width=390, height=900)
    visit(first, url)
    visit(second, url)

    first.fill("#id_min_step_seconds", "60")
    _save(first)
    plan.refresh_from_db()
    assert (plan.min_step_seconds, plan.version) == (60, 2)

    second.fill("#id_min_step_seconds", "7200")
    _save(second)
    assert "was changed by someone else since you opened it (now version 2)" in (
        second.locator(".errorlist.nonfield").inner_text()
    )
    plan.refresh_from_db()
    assert (plan.min_step_seconds, plan.version) == (60, 2)
    screenshot(second, "rollout-conflict-390-light")
    first.context.close()
    second.context.close()


def test_browser_change_request__first_step_of_a_plan__the_whole_rollout_shown(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    from flagapp.governance import change_requests as crs
    from flagapp.rollouts import controller

    base = live_server.url
    plan = controller.create_plan(
        setup["flag"], setup["env"], treatment="on", control="off", steps=[100, 2500, 10000],
        min_step_seconds=3600, guardrails=[{"metric": "error_rate", "threshold": 0.02}],
    )  # fmt: skip
    cr = crs.propose(
        controller.first_step_change(plan),
        author=h.user("author", perms=("flagapp.change_flagstate",)), reason="roll out",
        compute_blast_radius=False,
    )  # fmt: skip
    for width, scheme in ((1400, "light"), (390, "dark")):
        page = login(browser, base, "admin", width=width, height=1000, scheme=scheme)
        visit(page, f"{base}/admin/flagapp/changerequest/{cr.pk}/change/")
        box = page.locator("#cr-rollouts")
        assert "1% -> 25% -> 100%" in box.inner_text()
        assert "at least 1 h per step" in box.inner_text()
        screenshot(page, f"rollout-change-request-{width}-{scheme}")
        page.context.close()
