"""Issue 13 part 7, visual findings in real Chromium: the change-request page is readable in
dark mode (its diff cells and chart text use the admin's colours) and fits a 390 px phone;
the rules page fits a 1400 px window."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from flagapp import services
from flagapp.governance import change_requests as crs
from flagapp.models import FlagState

from .support import login, screenshot, visit
from .test_governance_browser import setup  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# WCAG relative luminance and contrast ratio of two "rgb(r, g, b)" strings.
CONTRAST_JS = """([a, b]) => {
  const lum = (c) => {
    const [r, g, bl] = c.match(/[0-9.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}"""
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _page(chromium: Any, base: str, user: User, width: int, scheme: str = "light") -> Any:
    return login(chromium, base, user, width=width, scheme=scheme)


def _request(setup: dict[str, Any]) -> Any:  # noqa: F811 - the fixture's value
    state = FlagState.objects.get(flag=setup["flag"], environment=setup["prod"])
    rule = {
        "id": "a-rather-long-rule-identifier-that-does-not-wrap-in-a-column",
        "when": [{"attr": "email", "op": "ends_with", "values": ["@example-enterprise.com"]}],
        "serve": {"variant": "on"},
    }
    change = {
        "operation": "update_flag_state",
        "flag": setup["flag"].key,
        "environment": "production",
        "params": {"rules": [rule], "expected_version": state.version},
    }
    return crs.propose(change, author=setup["alice"], reason="pro plan first")


def test_browser__change_request_dark_mode__diff_text_readable(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],  # noqa: F811
) -> None:
    cr = _request(setup)
    page = _page(browser, live_server.url, setup["bob"], 1280, scheme="dark")
    visit(page, f"{live_server.url}/admin/flagapp/changerequest/{cr.pk}/change/")
    for cell in ("td.cr-before", "td.cr-after"):
        background = page.eval_on_selector(cell, "e => getComputedStyle(e).backgroundColor")
        text = page.eval_on_selector(f"{cell} pre", "e => getComputedStyle(e).color")
        ratio = page.evaluate(CONTRAST_JS, [text, background])
        assert ratio >= 4.5, (cell, text, background, ratio)
    assert "update_flag_state" not in page.content()  # the title names the operation in words
    screenshot(page, "change-request-dark")


def test_browser__change_request_at_390px__no_horizontal_overflow(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],  # noqa: F811
) -> None:
    cr = _request(setup)
    page = _page(browser, live_server.url, setup["bob"], 390)
    visit(page, f"{live_server.url}/admin/flagapp/changerequest/{cr.pk}/change/")
    assert page.evaluate(OVERFLOW_JS) <= 0
    screenshot(page, "change-request-390")


def test_browser__rules_page_at_1400px__no_horizontal_overflow(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],  # noqa: F811
) -> None:
    flag, prod = setup["flag"], setup["prod"]
    from flagapp.policy import GrantedApproval

    services.update_flag_state(
        flag,
        prod,
        actor=None,
        reason="rules",
        rules=[
            {
                "id": "pros",
                "description": "paying customers of the enterprise plan in Europe",
                "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
                "serve": {"variant": "on"},
            }
        ],
        change_request=GrantedApproval(),
    )
    state = FlagState.objects.get(flag=flag, environment=prod)
    page = _page(browser, live_server.url, setup["alice"], 1400)
    visit(page, f"{live_server.url}/admin/flagapp/flagstate/{state.pk}/change/")
    assert page.evaluate(OVERFLOW_JS) <= 0
    screenshot(page, "rules-page-1400")
