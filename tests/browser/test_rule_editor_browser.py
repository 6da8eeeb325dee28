"""The visual targeting editor in real Chromium: rules as rows, a split in %, reorder, save,
reload; the text mode round trip; a server error on its row; JavaScript off still saves.
axe-core on every page and on the editor with rows open (tests/browser/support.py).
Screenshots: ``test-artifacts/rule-editor-<width>-<scheme>.png``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import services
from flagapp.admin.syntax import format_rules
from flagapp.models import Environment, Flag, FlagState
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup() -> dict[str, Any]:
    reset_flag_cache()
    owners = Group.objects.create(name="web")
    env = services.create_environment(key="staging", name="Staging", actor=None, reason="setup")
    services.create_segment(key="beta", name="Beta", include=["sam"], actor=None, reason="setup")
    flag = services.create_flag(
        key="checkout.editor", name="Editor flag", owner=owners, actor=None, reason="setup",
        expires_on=timezone.localdate() + timezone.timedelta(days=30),
    )  # fmt: skip
    admin = h.user("admin")
    admin.is_superuser = True
    admin.save()
    return {"env": env, "flag": flag}


def _page(chromium: Any, base: str, width: int, scheme: str, js: bool = True) -> Any:
    return login(chromium, base, "admin", width=width, height=1000, scheme=scheme, javascript=js)


def _state(flag: Flag, env: Environment) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


def _rules(flag: Flag, env: Environment) -> list[tuple[str, Any, Any]]:
    return [(r.rule_id, r.conditions, r.serve) for r in _state(flag, env).rules.order_by("order")]


def _save(page: Any, reason: str) -> None:
    if page.locator("#id_reason").count():
        page.fill("#id_reason", reason)
    page.click("input[name=_continue]")
    page.wait_for_load_state("load")
    check_accessibility(page)


def _chip(page: Any, label: str, *values: str) -> None:
    field = page.get_by_label(f"{label} (type one, then Enter)", exact=True)
    for value in values:
        field.fill(value)
        field.press("Enter")
        field = page.get_by_label(f"{label} (type one, then Enter)", exact=True)


def test_browser_rule_editor__rows_split_reorder__saved_and_shown_again(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag, env = setup["flag"], setup["env"]
    page = _page(browser, base, 1400, "light")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
    editor = page.locator('.flagapp-editor[data-kind="rules"]').first
    editor.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Rule 1 id", exact=True).fill("pro")
    editor.get_by_role("button", name="Add a condition to rule 1").click()
    page.get_by_label("Rule 1, condition 1: attribute", exact=True).fill("plan")
    _chip(page, "Rule 1, condition 1: values", "pro", "enterprise")
    editor.get_by_role("button", name="Add a condition to rule 1").click()
    page.get_by_label("Rule 1, condition 2: operator", exact=True).select_option("in_segment")
    _chip(page, "Rule 1, condition 2: values", "beta")
    page.get_by_label("Rule 1: serve a percentage split", exact=True).check()
    page.get_by_label("Rule 1, share 1: percent", exact=True).fill("33.33")
    remaining = editor.locator(".flagapp-editor-remaining").first
    assert remaining.inner_text() == "Remaining: 16.67 %"
    page.get_by_label("Rule 1, share 2: percent", exact=True).fill("66.67")
    assert remaining.inner_text() == "Remaining: 0.00 %"
    editor.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Rule 2 id", exact=True).fill("all")
    page.get_by_label("Rule 2: variant", exact=True).fill("off")
    editor.get_by_role("button", name="Move rule 2 up").click()
    check_accessibility(page)
    screenshot(page, "rule-editor-1400-light")
    _save(page, "target pro and beta users")
    assert _rules(flag, env) == [
        ("all", [], {"variant": "off"}),
        (
            "pro",
            [
                {"attr": "plan", "op": "in", "values": ["pro", "enterprise"]},
                {"op": "in_segment", "values": ["beta"]},
            ],
            {
                "rollout": {
                    "weights": [
                        {"variant": "on", "weight": 3333},
                        {"variant": "off", "weight": 6667},
                    ]
                }
            },
        ),
    ]
    # shown again as rows, the split in %
    visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
    assert page.get_by_label("Rule 1 id", exact=True).input_value() == "all"
    assert page.get_by_label("Rule 2, share 1: percent", exact=True).input_value() == "33.33"
    # text mode round trip: the text is format_rules' own; an edit there comes back as rows
    editor = page.locator('.flagapp-editor[data-kind="rules"]').first
    editor.get_by_role("button", name="Edit the text syntax").click()
    textarea = page.locator("textarea[data-flagapp-editor=rules]").first
    assert textarea.input_value() == format_rules(_rules(flag, env))
    textarea.fill(textarea.input_value().replace("[all] => off", "[all] => on"))
    editor.get_by_role("button", name="Edit as rows").click()
    page.get_by_label("Rule 1: variant", exact=True).wait_for()
    assert page.get_by_label("Rule 1: variant", exact=True).input_value() == "on"
    editor.get_by_role("button", name="Edit the text syntax").click()
    textarea.fill("plan in pro")
    editor.get_by_role("button", name="Edit as rows").click()
    status = editor.locator(".flagapp-editor-status")
    status.wait_for()
    assert status.inner_text().startswith("line 1: expected")
    assert textarea.is_visible()
    assert errors == []
    page.context.close()


def test_browser_rule_editor__server_refusal__lands_on_its_row(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag, env = setup["flag"], setup["env"]
    page = _page(browser, base, 1400, "dark")
    visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
    editor = page.locator('.flagapp-editor[data-kind="rules"]').first
    editor.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Rule 1: variant", exact=True).fill("on")
    editor.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Rule 2: variant", exact=True).fill("nope")
    _save(page, "a variant that does not exist")
    card = page.locator(".flagapp-editor-rule").nth(1)
    assert "flagapp-editor-invalid" in (card.get_attribute("class") or "")
    assert "nope" in card.inner_text()
    assert "flagapp-editor-invalid" not in (
        page.locator(".flagapp-editor-rule").nth(0).get_attribute("class") or ""
    )
    assert _rules(flag, env) == []  # nothing saved
    check_accessibility(page)
    screenshot(page, "rule-editor-1400-dark")
    page.context.close()


def test_browser_rule_editor__narrow_and_without_javascript__the_textarea_saves(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag, env = setup["flag"], setup["env"]
    services.update_flag_state(
        flag, env, actor=None, reason="setup",
        rules=[{"id": "pro", "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"variant": "on"}}],
    )  # fmt: skip
    for scheme in ("light", "dark"):
        page = _page(browser, base, 390, scheme)
        visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
        page.locator(".flagapp-editor-rule").first.wait_for()
        overflow = page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('.flagapp-editor')]"
            ".map(e => e.getBoundingClientRect().right)) - window.innerWidth"
        )
        assert overflow <= 0, f"the editor overflows a 390 px viewport by {overflow} px"
        check_accessibility(page)
        screenshot(page, f"rule-editor-390-{scheme}")
        page.context.close()
    page = _page(browser, base, 1400, "light", js=False)
    visit(page, f"{base}/admin/flagapp/flag/{flag.pk}/change/")
    assert page.locator(".flagapp-editor").count() == 0
    textarea = page.locator("textarea[data-flagapp-editor=rules]").first
    assert textarea.is_visible()
    textarea.fill("[pro] plan in pro => on:2500 off:7500")
    _save(page, "a split, typed as text")
    assert _rules(flag, env)[0][2] == {
        "rollout": {
            "weights": [{"variant": "on", "weight": 2500}, {"variant": "off", "weight": 7500}]
        }
    }
    page.context.close()


def test_browser_rule_editor__prerequisite_picked_and_rule_dragged__saved_in_that_order(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
) -> None:
    base = live_server.url
    flag, env = setup["flag"], setup["env"]
    services.create_flag(
        key="checkout.base", name="Base flag", owner=flag.owner, actor=None, reason="setup",
        expires_on=timezone.localdate() + timezone.timedelta(days=30),
    )  # fmt: skip
    services.update_flag_state(
        flag, env, actor=None, reason="setup",
        rules=[{"id": "first", "serve": {"variant": "on"}},
               {"id": "second", "serve": {"variant": "off"}}],
    )  # fmt: skip
    page = _page(browser, base, 1400, "light")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/admin/flagapp/flag/{flag.pk}/change/")
    rules = page.locator('.flagapp-editor[data-kind="rules"]').first
    rules.locator(".flagapp-editor-rule").nth(1).drag_to(
        rules.locator(".flagapp-editor-rule").nth(0)
    )
    assert page.get_by_label("Rule 1 id", exact=True).input_value() == "second"
    prereqs = page.locator('.flagapp-editor[data-kind="prerequisites"]').first
    prereqs.get_by_role("button", name="Add a prerequisite").click()
    page.get_by_label("Prerequisite 1: flag", exact=True).fill("checkout.base")
    _chip(page, "Prerequisite 1: variants", "on")
    # the rows start where the editor starts (not pushed right by the admin's aligned-form lists)
    row_left = prereqs.locator(".flagapp-editor-prereq").first.bounding_box()["x"]
    add_left = prereqs.get_by_role("button", name="Add a prerequisite").bounding_box()["x"]
    assert abs(row_left - add_left) <= 2, f"prerequisite row at {row_left}, editor at {add_left}"
    screenshot(page, "rule-editor-1400-light-prerequisite")
    _save(page, "after checkout.base, the off rule first")
    assert [r[0] for r in _rules(flag, env)] == ["second", "first"]
    assert _state(flag, env).prerequisites == [{"flag": "checkout.base", "variants": ["on"]}]
    assert errors == []
    page.context.close()
