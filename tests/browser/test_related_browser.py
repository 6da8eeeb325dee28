"""The related views in real Chromium (issue 13 part 6): an SDK key created (its token shown
once, gone on reload) and revoked with a reason; a segment's page listing the flags that use
it, also through another segment; a promotion from staging to protected production
previewed flag by flag and turned into change requests. Light and dark, 1400 px and 390 px;
axe-core on every page. Screenshots: ``test-artifacts/sdk-keys-*.png``, ``segment-*.png``,
``promote-*.png``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from flagapp import sampling, services
from flagapp.models import ChangeRequest, SdkKey
from flagapp.sdk import keys
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

from .support import check_accessibility, login, screenshot, visit
from .test_admin_layout_browser import OVERFLOW_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
    services.create_segment(key="beta", name="Beta testers", include=["u1"], actor=None,
                            reason="s")  # fmt: skip
    services.create_segment(
        key="staff", name="Staff", actor=None, reason="s",
        conditions=[{"op": "in_segment", "values": ["beta"]}],
    )  # fmt: skip
    for key, segment in (("checkout.new-flow", "beta"), ("search.instant", "staff")):
        flag = services.create_flag(
            key=key, name=key, owner=owners, actor=None, reason="s",
            expires_on=timezone.localdate() + timezone.timedelta(days=30),
        )  # fmt: skip
        services.update_flag_state(
            flag, staging, enabled=True, actor=None, reason="beta first",
            rules=[{"id": "beta", "when": [{"op": "in_segment", "values": [segment]}],
                    "serve": {"variant": "on"}}],
            fallthrough={"rollout": {"weights": [{"variant": "on", "weight": 1000},
                                                 {"variant": "off", "weight": 9000}]}},
        )  # fmt: skip
    ops = h.user(
        "ops",
        perms=("flagapp.view_sdkkey", "flagapp.add_sdkkey", "flagapp.change_sdkkey",
               "flagapp.view_segment", "flagapp.view_flag", "flagapp.view_environment",
               "flagapp.view_flagstate", "flagapp.change_flagstate",
               "flagapp.change_protected_environment", "flagapp.view_changerequest"),
    )  # fmt: skip
    return {"staging": staging, "prod": prod, "ops": ops}


def test_browser_sdk_keys__create_token_once_then_revoke(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    base = live_server.url
    page = login(browser, base, "ops", width=1400)
    visit(page, f"{base}/admin/flagapp/sdkkey/")
    page.click("a.addlink")
    check_accessibility(page)
    page.select_option("#id_environment", label="staging")
    page.fill("#id_name", "checkout-service")
    page.fill("#id_reason", "the new checkout service")
    screenshot(page, "sdk-keys-create-1400-light")
    page.click("input[type=submit]")
    page.wait_for_selector("#sdk-token")
    check_accessibility(page)
    token = page.input_value("#sdk-token")
    assert keys.authenticate_token(token).environment_key == "staging"
    screenshot(page, "sdk-keys-created-1400-light")
    page.click("text=I have copied it")
    check_accessibility(page)
    assert token not in page.content()
    page.fill("#id_reason", "rotated after a leak")
    page.click("input[value='Revoke this key']")
    page.wait_for_selector(".messagelist .success")
    check_accessibility(page)
    assert "rotated after a leak" in page.locator("#sdk-key-details").inner_text()
    assert SdkKey.objects.get().revoke_reason == "rotated after a leak"
    with pytest.raises(keys.AuthFailure):
        keys.authenticate_token(token)
    visit(page, f"{base}/admin/flagapp/sdkkey/?status=revoked")
    assert token not in page.content()
    screenshot(page, "sdk-keys-list-1400-light")
    # the audit log has both, with who and why, and never the token
    visit(page, f"{base}/admin/flagapp/flag/audit-log/?environment=staging&user=ops")
    log = page.locator("#audit-log").inner_text()
    assert "the new checkout service" in log and "rotated after a leak" in log
    assert "revoked" in log and token not in page.content()
    screenshot(page, "audit-log-sdk-keys-1400-light")
    page.context.close()
    page = login(browser, base, "ops", width=390, scheme="dark")
    visit(page, f"{base}/admin/flagapp/sdkkey/")
    screenshot(page, "sdk-keys-list-390-dark")
    page.context.close()


def test_browser_segment_page__flags_using_it_directly_and_through_a_segment(
    browser: Any, live_server: Any, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.admin import resources
    from flagapp.models import Segment

    base = live_server.url
    beta = Segment.objects.get(key="beta")
    for width, scheme in ((1400, "light"), (390, "dark")):
        page = login(browser, base, "ops", width=width, scheme=scheme)
        visit(page, f"{base}/admin/flagapp/segment/{beta.pk}/change/")
        used = page.locator(".flagapp-segment-usage").inner_text()
        assert "checkout.new-flow" in used and "search.instant" in used
        assert "staff" in used  # search.instant uses beta through staff
        assert page.evaluate(OVERFLOW_JS) <= 0
        screenshot(page, f"segment-{width}-{scheme}")
        page.context.close()
    # one rule per page: the pager, followed by a click (the live server shares this process)
    monkeypatch.setattr(resources, "USAGE_ROWS", 1)
    for width, scheme in ((1400, "light"), (390, "dark")):
        page = login(browser, base, "ops", width=width, scheme=scheme)
        visit(page, f"{base}/admin/flagapp/segment/{beta.pk}/change/")
        assert "Rules 1\u20131 of 2" in page.locator(".flagapp-pager").inner_text()
        assert "checkout.new-flow" in page.locator(".flagapp-segment-usage").inner_text()
        page.click(".flagapp-pager a[rel=next]")
        page.wait_for_url("**usage=2")
        check_accessibility(page)
        assert "Rules 2\u20132 of 2" in page.locator(".flagapp-pager").inner_text()
        assert "search.instant" in page.locator(".flagapp-segment-usage").inner_text()
        assert page.evaluate(OVERFLOW_JS) <= 0
        screenshot(page, f"segment-paged-{width}-{scheme}")
        page.context.close()


def test_browser_promote__preview_then_change_requests_for_protected_production(
    browser: Any, live_server: Any, setup: dict[str, Any]
) -> None:
    base = live_server.url
    for width, scheme in ((390, "dark"), (1400, "light")):
        page = login(browser, base, "ops", width=width, scheme=scheme)
        visit(page, f"{base}/admin/flagapp/environment/")
        page.click("#link-promote")
        check_accessibility(page)
        page.select_option("#id_source", "staging")
        page.select_option("#id_target", "production")
        page.click("#promote-pick input[type=submit]")
        page.wait_for_selector("#promote-preview")
        check_accessibility(page)
        summary = page.locator("#promote-summary").inner_text()
        assert "2 flag(s) change in production" in summary and "2 need approval" in summary
        row = page.locator('tr[data-flag="checkout.new-flow"]').inner_text()
        assert "rule: in_segment beta → on" in row and "otherwise: on 10% · off 90%" in row
        assert page.evaluate(OVERFLOW_JS) <= 0
        screenshot(page, f"promote-preview-{width}-{scheme}")
        if width == 390:
            page.context.close()
    page.uncheck('tr[data-flag="search.instant"] input[name=flags]')
    page.fill("#id_reason", "release 42")
    page.click("#promote-apply input[name=_apply]")
    page.wait_for_selector(".messagelist")
    check_accessibility(page)
    assert "need approval in production" in page.locator(".messagelist").inner_text()
    cr = ChangeRequest.objects.get()
    assert (cr.flag_key, cr.status) == ("checkout.new-flow", "pending")
    screenshot(page, "promote-proposed-1400-light")
    page.context.close()


def test_browser_promote__second_page_of_the_preview_ticks_and_the_others(
    browser: Any, live_server: Any, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.admin import promote
    from flagapp.models import FlagState

    monkeypatch.setattr(promote, "SHOWN", 1)
    base = live_server.url
    page = login(browser, base, "ops", width=390, scheme="dark")
    visit(page, f"{base}/admin/flagapp/environment/promote/?source=staging&target=production"
                "&include_enabled=on")  # fmt: skip
    assert "Flags 1\u20131 of 2" in page.locator(".pr-pager").inner_text()
    page.click(".pr-pager a[rel=next]")
    page.wait_for_url("**page=2**")
    check_accessibility(page)
    assert page.locator("tr.pr-row").get_attribute("data-flag") == "search.instant"
    assert "1 other changed flag(s) not on this page" in page.locator("#promote-apply").inner_text()
    assert page.evaluate(OVERFLOW_JS) <= 0
    screenshot(page, "promote-paged-390-dark")
    # untick the one shown, keep "the others": only checkout.new-flow is proposed
    page.uncheck('tr[data-flag="search.instant"] input[name=flags]')
    page.fill("#id_reason", "release 43")
    page.click("#promote-apply input[name=_apply]")
    page.wait_for_selector(".messagelist")
    check_accessibility(page)
    assert [cr.flag_key for cr in ChangeRequest.objects.all()] == ["checkout.new-flow"]
    assert not FlagState.objects.filter(environment=setup["prod"], enabled=True).exists()
    page.context.close()
