"""The playground in real Chromium: pick a sampled context, evaluate, read the why; the rows
equal ``flagapp-eval --explain`` on the published snapshot. Screenshots:
``test-artifacts/playground-1400-light.png`` and ``playground-390-dark.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from flagapp import sampling, services
from flagapp.models import ContextSample, Environment
from flagapp.publishing import latest
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h
from tests.flagapp.admin.test_admin_playground import cli_explain

from .support import check_accessibility, login, screenshot, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    from django.contrib.auth.models import Group

    sampling.reset()
    reset_flag_cache()
    owners = Group.objects.create(name="web")
    env = services.create_environment(key="staging", name="Staging", actor=None, reason="setup")
    services.create_segment(
        key="beta", name="Beta", include=["sam"], actor=None, reason="setup",
        conditions=[{"attr": "email", "op": "ends_with", "values": ["@example.org"]}],
    )  # fmt: skip
    flag = services.create_flag(
        key="checkout.new-flow", name="New checkout", owner=owners,
        expires_on=timezone.localdate() + timezone.timedelta(days=30), actor=None, reason="s",
    )  # fmt: skip
    services.update_flag_state(
        flag, env, enabled=True, actor=None, reason="setup",
        rules=[{"id": "beta", "when": [{"op": "in_segment", "values": ["beta"]}],
                "serve": {"variant": "on"}}],
        fallthrough={"rollout": {"weights": [{"variant": "on", "weight": 1000},
                                             {"variant": "off", "weight": 9000}]}},
    )  # fmt: skip
    services.create_flag(
        key="web.theme", name="Theme", owner=owners, kind="string", flag_type="ops",
        variants={"light": "light", "dark": "dark"}, actor=None, reason="s",
    )  # fmt: skip
    ContextSample.objects.create(
        environment=env, context={"targetingKey": "sam", "email": "sam@example.com"},
        targeting_key="sam", recorded_at=timezone.now(),
    )  # fmt: skip
    admin = h.user("admin")
    admin.is_superuser = True
    admin.save()
    return {"env": env, "admin": admin}


def test_browser_playground__sampled_context__explained_like_the_cli(
    browser: Any,
    live_server: Any,
    setup: dict[str, Any],
    tmp_path: Path,
) -> None:
    base = live_server.url
    env: Environment = setup["env"]
    for width, scheme in ((1400, "light"), (390, "dark")):
        # JavaScript off: the form posts back
        page = login(browser, base, "admin", width=width, height=1100, scheme=scheme,
                     javascript=False)  # fmt: skip
        visit(page, f"{base}/admin/flagapp/flag/")
        page.click("#link-playground")
        check_accessibility(page)
        page.select_option("#id_environment", "staging")
        page.click("#playground-samples button[name=use_sample]")  # the sampled "sam"
        page.wait_for_selector("#playground-results")
        check_accessibility(page)
        row = page.locator('#playground-results tr[data-flag="checkout.new-flow"]')
        text = row.inner_text()
        assert "segment beta: member (the targeting key is in its include list)" in text
        assert "rule beta (serves on): matched" in text
        screenshot(page, f"playground-{width}-{scheme}")
        shown = [
            pre.text_content() for pre in page.locator("#playground-results pre.explain-line").all()
        ]
        snap = latest(env.key)
        assert snap is not None
        context = json.loads(page.input_value("#id_context"))
        assert context == {"targetingKey": "sam", "email": "sam@example.com"}
        assert shown == cli_explain(snap.document, context, tmp_path).splitlines()
        # a typed context, the split explained with its position
        page.fill("#id_context", '{"targetingKey": "user-42"}')
        page.click("#playground-evaluate")
        page.wait_for_selector("#playground-results")
        check_accessibility(page)
        text = page.locator('#playground-results tr[data-flag="checkout.new-flow"]').inner_text()
        assert "split by targetingKey" in text and "on below 10%" in text
        page.context.close()
