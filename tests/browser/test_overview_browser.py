"""The flag page's per-environment cards and the on/off toggle in real Chromium
(flagapp.admin.overview): a flag turned off from the list and from a card with a reason
(the inline prompt with JavaScript, the confirmation page without; turning on always
shows that page, with the blast radius), seen on the card and in
the timeline; in protected production turning it on creates a change request, shown on the
card. Light and dark, 1400 px and 390 px; axe-core on every page and open prompt.
Screenshots: ``test-artifacts/flag-overview-*.png``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import sampling, services
from flagapp.models import ChangeRequest, Environment, Flag, FlagEvaluationStat, FlagState
from flagapp.policy import GrantedApproval
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit
from .test_admin_layout_browser import OVERFLOW_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RULE = {
    "id": "pros",
    "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
    "serve": {"variant": "on"},
}
SPLIT = {"rollout": {"weights": [{"variant": "on", "weight": 2500},
                                 {"variant": "off", "weight": 7500}]}}  # fmt: skip


@pytest.fixture
def setup() -> dict[str, Any]:
    sampling.reset()
    reset_flag_cache()
    owners = Group.objects.create(name="checkout")
    staging = services.create_environment(
        key="staging", name="Staging", order=1, actor=None, reason="setup"
    )
    prod = services.create_environment(
        key="production", name="Production", order=2, protected=True, actor=None, reason="s"
    )
    alice = h.user(
        "alice",
        perms=("flagapp.view_flag", "flagapp.change_flag", "flagapp.view_flagstate",
               "flagapp.change_flagstate", "flagapp.change_protected_environment",
               "flagapp.view_changerequest"),
    )  # fmt: skip
    flag = services.create_flag(
        key="checkout.new-flow", name="New checkout", owner=owners,
        expires_on=timezone.localdate() + timezone.timedelta(days=30), actor=None, reason="s",
    )  # fmt: skip
    for env in (staging, prod):
        services.update_flag_state(
            flag, env, actor=alice, reason=f"launch in {env.key} for pros, 25% of the rest",
            enabled=True, rules=[RULE], fallthrough=SPLIT, change_request=GrantedApproval(),
        )  # fmt: skip
        FlagEvaluationStat.objects.create(
            environment=env, flag_key=flag.key, count=1234, last_evaluated_at=timezone.now()
        )
    return {"staging": staging, "prod": prod, "flag": flag, "alice": alice}


def _login(chromium: Any, base: str, width: int, scheme: str, js: bool = True) -> Any:
    return login(chromium, base, "alice", width=width, height=1000, scheme=scheme, javascript=js)


def _shot(page: Any, name: str) -> None:
    screenshot(page, f"flag-overview-{name}")


def _enabled(flag: Flag, env: Environment) -> bool:
    return FlagState.objects.get(flag=flag, environment=env).enabled


def test_browser_overview__toggle_from_list_and_card__cards_history_change_request(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag, staging, prod = setup["flag"], setup["staging"], setup["prod"]
    flag_page = f"{base}/admin/flagapp/flag/{flag.pk}/change/"

    # 1400 px, light, JavaScript on: the list's staging toggle asks for the reason inline.
    page = _login(browser, base, 1400, "light")
    visit(page, f"{base}/admin/flagapp/flag/")
    assert "(current theme" in page.content()  # the stock admin page, styled
    page.click(f"#toggle-staging-{flag.pk}")
    prompt = page.locator(".flagapp-toggle-prompt")
    prompt.wait_for()
    check_accessibility(page)  # the inline prompt, open
    assert page.url.endswith("/admin/flagapp/flag/")  # no navigation: the inline prompt
    page.fill(".flagapp-toggle-reason", "list: errors in staging")
    _shot(page, "list-prompt-1400-light")
    page.click(".flagapp-toggle-submit")
    page.wait_for_selector(".messagelist .success")
    check_accessibility(page)
    assert "Turned off checkout.new-flow in staging" in page.locator(".messagelist").inner_text()
    assert page.url.endswith("/admin/flagapp/flag/")
    assert not _enabled(flag, staging)
    _shot(page, "list-1400-light")

    # The card: staging is off, the last change is alice's with the reason.
    visit(page, flag_page)
    card = page.locator("#env-card-staging")
    text = " ".join(card.inner_text().split())
    assert "OFF" in text and "Off: everyone gets the caller's default." in text
    assert "by alice" in text and "list: errors in staging" in text
    prod_text = " ".join(page.locator("#env-card-production").inner_text().split())
    assert "plan in pro, enterprise → on" in prod_text
    assert "Everyone else: on 25% · off 75%" in prod_text
    assert "1,234 evaluations · last evaluated just now" in prod_text
    assert page.evaluate(OVERFLOW_JS) <= 0
    _shot(page, "1400-light")

    # From the production card: the kill switch applies at once, even though protected.
    page.click(f"#toggle-production-{flag.pk}")
    page.fill("#env-card-production .flagapp-toggle-reason", "card: incident 4711")
    page.click("#env-card-production .flagapp-toggle-submit")
    page.wait_for_selector(".messagelist .success")
    check_accessibility(page)
    assert not _enabled(flag, prod)
    assert not ChangeRequest.objects.exists()
    prod_text = " ".join(page.locator("#env-card-production").inner_text().split())
    assert "OFF" in prod_text and "card: incident 4711" in prod_text

    # Turning production back on opens the confirmation page (blast radius first) and,
    # production being protected, makes a change request, listed on the card.
    page.click(f"#toggle-production-{flag.pk}")
    page.wait_for_selector("#toggle-form")
    check_accessibility(page)
    assert "Blast radius:" in page.locator("#toggle-radius").inner_text()
    submit = page.locator("#toggle-submit").get_attribute("value") or ""
    assert submit == "Propose turning on in production"
    page.fill("#id_reason", "incident over")
    _shot(page, "confirm-on-1400-light")
    page.click("#toggle-submit")
    page.wait_for_selector("#cr-created")
    check_accessibility(page)
    cr = ChangeRequest.objects.get()
    assert (cr.status, cr.environment_key, cr.reason) == ("pending", "production", "incident over")
    assert not _enabled(flag, prod)
    message = page.locator(".messagelist").first.inner_text()
    assert "Nothing was changed yet: production needs approval" in message
    pending = page.locator("#env-card-production .card-pending").inner_text()
    assert f"#{cr.pk} turn on by alice" in pending
    _shot(page, "change-request-1400-light")

    # The timeline shows both toggles with their reasons.
    visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/timeline/")
    timeline = page.locator("#timeline").inner_text()
    assert "list: errors in staging" in timeline and "card: incident 4711" in timeline
    assert "turned off (everyone gets the default)" in timeline
    page.context.close()

    # 1400 px dark: the cards readable in dark mode.
    page = _login(browser, base, 1400, "dark")
    visit(page, flag_page)
    colour = page.eval_on_selector("#env-card-staging", "e => getComputedStyle(e).color")
    background = page.eval_on_selector(
        "#env-card-staging", "e => getComputedStyle(e).backgroundColor"
    )
    assert colour != background
    _shot(page, "1400-dark")
    page.context.close()

    # 390 px, dark, JavaScript off: the link opens the confirmation page.
    page = _login(browser, base, 390, "dark", js=False)
    visit(page, flag_page)
    assert page.evaluate(OVERFLOW_JS) <= 0
    _shot(page, "390-dark")
    page.click(f"#toggle-staging-{flag.pk}")
    page.wait_for_selector("#toggle-form")
    check_accessibility(page)
    assert "is off in Staging" in page.locator("#toggle-now").inner_text()
    assert page.locator("#id_reason").get_attribute("required") is not None  # and the server
    page.fill("#id_reason", "fixed: back on")
    _shot(page, "confirm-390-dark")
    page.click("#toggle-submit")
    page.wait_for_selector("#flag-overview")
    check_accessibility(page)
    assert _enabled(flag, staging)
    assert "fixed: back on" in page.locator("#env-card-staging").inner_text()
    visit(page, f"{base}/admin/flagapp/flag/")
    _shot(page, "list-390-dark")
    page.context.close()

    # 390 px light: the cards stack in one column.
    page = _login(browser, base, 390, "light")
    visit(page, flag_page)
    boxes = [page.locator(f"#env-card-{k}").bounding_box() for k in ("staging", "production")]
    assert boxes[0] and boxes[1] and boxes[1]["y"] > boxes[0]["y"]
    assert page.evaluate(OVERFLOW_JS) <= 0
    _shot(page, "390-light")
    page.context.close()
