"""The admin playground: the published snapshot explained for one context, exactly as
``flagapp-eval --explain`` explains it; samples, proposals, permissions, escaping, no JS."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flagapp import services
from flagapp.exceptions import ApprovalRequired
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState
from flagapp.policy import GrantedApproval
from flagapp.publishing import latest
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db

URL = "/admin/flagapp/snapshot/playground/"

Committed = Callable[[], AbstractContextManager[Any]]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("flagapp-eval")
    if script.exists():
        return [str(script)]
    found = shutil.which("flagapp-eval")
    return [found] if found else [sys.executable, "-m", "openfeature_provider.cli"]


def cli_explain(document: str, context: dict[str, Any], tmp_path: Path) -> str:
    """``flagapp-eval --explain`` (the installed console script) on a snapshot document."""
    path = tmp_path / "snapshot.json"
    path.write_text(document, encoding="utf-8")
    proc = subprocess.run(
        [*_cli(), "--ruleset", str(path), "--explain"],
        input=json.dumps(context) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=True,
    )
    return proc.stdout


@pytest.fixture
def shapes(make_flag: Any, envs: dict[str, Environment], committed: Committed) -> Environment:
    """One flag of each shape in staging: rules on attributes, a segment (itself built on a
    segment and an include list), a prerequisite, a percentage split, a disabled flag, an
    object variant and a string variant holding markup."""
    env = envs["staging"]
    with committed():
        services.create_segment(
            key="corp", name="Corp", include=["vip-1"], exclude=["u-out"],
            conditions=[{"attr": "email", "op": "ends_with", "values": ["@example.com"]}],
            actor=None, reason="setup",
        )  # fmt: skip
        services.create_segment(
            key="corp-staff", name="Corp staff",
            conditions=[{"op": "in_segment", "values": ["corp"]},
                        {"attr": "staff", "op": "eq", "values": [True]}],
            actor=None, reason="setup",
        )  # fmt: skip
        base = make_flag("shape.rules")
        services.update_flag_state(
            base, env, enabled=True, fallthrough={"variant": "off"},
            rules=[{"id": "pros", "when": [{"attr": "plan", "op": "in", "values": ["pro", "team"]},
                                           {"attr": "country", "op": "eq", "values": ["US"],
                                            "negate": True}],
                    "serve": {"variant": "on"}}],
            actor=None, reason="setup",
        )  # fmt: skip
        seg = make_flag("shape.segment")
        services.update_flag_state(
            seg, env, enabled=True, fallthrough={"variant": "off"},
            rules=[{"id": "staff", "when": [{"op": "in_segment", "values": ["corp-staff"]}],
                    "serve": {"variant": "on"}}],
            actor=None, reason="setup",
        )  # fmt: skip
        pre = make_flag("shape.prereq")
        services.update_flag_state(
            pre, env, enabled=True, fallthrough={"variant": "on"},
            prerequisites=[{"flag": "shape.rules", "variants": ["on"]}],
            actor=None, reason="setup",
        )  # fmt: skip
        split = make_flag("shape.split")
        services.update_flag_state(
            split, env, enabled=True,
            fallthrough={"rollout": {"weights": [{"variant": "on", "weight": 3000},
                                                 {"variant": "off", "weight": 7000}]}},
            actor=None, reason="setup",
        )  # fmt: skip
        make_flag("shape.disabled")
        obj = make_flag(
            "shape.object", kind="object", flag_type="ops", expires_on=None,
            variants={"cfg": {"limit": 3, "label": "<b>bold</b>"}, "none": {}},
        )  # fmt: skip
        services.update_flag_state(
            obj, env, enabled=True, fallthrough={"variant": "cfg"}, actor=None, reason="setup"
        )
        text = make_flag(
            "shape.markup", kind="string", flag_type="ops", expires_on=None,
            variants={"x": "<script>alert(1)</script>"},
        )  # fmt: skip
        services.update_flag_state(
            text, env, enabled=True, fallthrough={"variant": "x"}, actor=None, reason="setup"
        )
    return env


CONTEXTS = [
    {"targetingKey": "u1", "plan": "pro", "country": "DE", "email": "a@example.com",
     "staff": True},
    {"targetingKey": "u-out", "plan": "free", "email": "b@example.com", "staff": True},
    {"targetingKey": "vip-1", "plan": "team", "country": "US", "staff": True},
    {"plan": "pro", "note": "<img src=x onerror=alert(1)>"},
]  # fmt: skip


def _post(client: Client, **data: Any) -> Any:
    data.setdefault("environment", "staging")
    data.setdefault("_evaluate", "Evaluate")
    return client.post(URL, data)


def _lines_in_page(response: Any) -> list[str]:
    page = response.content.decode()
    return [html.unescape(m) for m in re.findall(r'<pre class="explain-line">(.*?)</pre>', page)]


@pytest.mark.parametrize("ctx", CONTEXTS, ids=["pro-de", "excluded", "included", "no-key"])
def test_playground__flag_shapes__rows_equal_cli_explain_of_published_snapshot(
    admin_client: Client, shapes: Environment, ctx: dict[str, Any], tmp_path: Path
) -> None:
    snap = latest("staging")
    assert snap is not None
    expected = cli_explain(snap.document, ctx, tmp_path)
    download = _post(admin_client, context=json.dumps(ctx), _jsonl="1")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("application/x-ndjson")
    assert b"".join(download.streaming_content).decode() == expected
    page = _post(admin_client, context=json.dumps(ctx))
    assert page.status_code == 200
    assert _lines_in_page(page) == expected.splitlines()
    assert len(expected.splitlines()) == 7  # every flag of the snapshot


def test_playground__segment_and_prerequisite__explained_in_words(
    admin_client: Client, shapes: Environment
) -> None:
    page = _post(admin_client, context=json.dumps(CONTEXTS[0])).content.decode()
    assert "segment corp-staff: member (by its conditions)" in page
    assert "email ends_with @example.com — context: &quot;a@example.com&quot;" in page
    assert "prerequisite shape.rules served on (TARGETING_MATCH); needs on" in page
    assert "rule pros (serves on): matched" in page
    assert "not country eq US — context: &quot;DE&quot;" in page
    assert re.search(r"split by targetingKey = &quot;u1&quot;: position [\d.]+% → (on|off)", page)
    assert "the flag is off in this environment" in page
    excluded = _post(admin_client, context=json.dumps(CONTEXTS[1])).content.decode()
    assert "segment corp: not a member (the targeting key is in its exclude list)" in excluded
    assert "prerequisite shape.rules served off (DEFAULT); needs on" in excluded


def test_playground__markup_in_values_and_context__escaped(
    admin_client: Client, shapes: Environment
) -> None:
    page = _post(admin_client, context=json.dumps(CONTEXTS[3]), flag="shape").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page
    assert "<img src=x" not in page


def test_playground__flag_filter__only_matching_rows(
    admin_client: Client, shapes: Environment
) -> None:
    response = _post(admin_client, context="{}", flag="split")
    assert [r["flag"] for r in response.context["rows"]] == ["shape.split"]
    assert response.context["total_flags"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "context: not valid JSON"),
        ("[1, 2]", "context: must be a JSON object"),
        ('"u1"', "context: must be a JSON object"),
        ("[" * 100_000, "context: at most 65,536 characters"),
    ],
)
def test_playground__bad_context__error_names_context_nothing_evaluated(
    admin_client: Client, shapes: Environment, text: str, message: str
) -> None:
    response = _post(admin_client, context=text)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["context"])
    assert "rows" not in response.context


def test_playground__deeply_nested_context__error_not_crash(
    admin_client: Client, shapes: Environment
) -> None:
    response = _post(admin_client, context="[" * 30_000 + "]" * 30_000)
    assert response.status_code == 200
    assert "context: not valid JSON" in " ".join(response.context["form"].errors["context"])


def test_playground__get__form_without_results_no_javascript(
    admin_client: Client, shapes: Environment
) -> None:
    response = admin_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<form method="post"' in page and 'name="csrfmiddlewaretoken"' in page
    assert "<script" not in page.split('id="content-main"')[1]  # the page works without JS
    assert "rows" not in response.context


def test_playground__use_sample__its_context_evaluated_and_shown(
    admin_client: Client, shapes: Environment, envs: dict[str, Environment]
) -> None:
    sample = ContextSample.objects.create(
        environment=shapes, context={"targetingKey": "sampled-7", "plan": "pro", "country": "FR"},
        targeting_key="sampled-7", recorded_at=timezone.now(),
    )  # fmt: skip
    other = ContextSample.objects.create(
        environment=envs["production"], context={"targetingKey": "prod-1"},
        targeting_key="prod-1", recorded_at=timezone.now(),
    )  # fmt: skip
    page = admin_client.get(URL, {"environment": "staging"}).content.decode()
    assert "sampled-7" in page and "prod-1" not in page
    response = _post(admin_client, context="{}", use_sample=str(sample.pk))
    assert json.loads(response.context["form"]["context"].value()) == sample.context
    rows = {r["flag"]: r for r in response.context["rows"]}
    assert rows["shape.rules"]["variant"] == "on"
    response = _post(admin_client, context="{}", use_sample=str(other.pk))
    assert "no longer stored for this environment" in response.content.decode()


def test_playground__nothing_published__says_so(
    admin_client: Client, envs: dict[str, Environment]
) -> None:
    response = _post(admin_client, context="{}", environment="development")
    assert response.status_code == 200
    assert latest("development") is None
    assert "Nothing is published for development yet" in response.content.decode()


def test_playground__permissions__view_perms_needed_anonymous_sent_to_login(
    client: Client, shapes: Environment
) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    nobody = h.user("nobody")
    client.force_login(nobody)
    assert client.get(URL).status_code == 403
    assert _post(client, context="{}").status_code == 403
    flags_only = h.user("flags-only", perms=("flagapp.view_flag",))
    client.force_login(flags_only)
    assert client.get(URL).status_code == 403
    viewer = h.user("viewer", perms=("flagapp.view_flag", "flagapp.view_flagstate"))
    client.force_login(viewer)
    assert client.get(URL).status_code == 200
    assert len(_post(client, context="{}").context["rows"]) == 7
    outsider = h.user("outsider", staff=False, perms=("flagapp.view_flag",))
    client.force_login(outsider)
    assert client.get(URL).status_code == 302


def test_playground__csrf__post_without_token_refused(shapes: Environment) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(h.user("viewer", perms=("flagapp.view_flag", "flagapp.view_flagstate")))
    assert client.post(URL, {"environment": "staging", "context": "{}"}).status_code == 403


# --- proposals ---------------------------------------------------------------------------------


@pytest.fixture
def pending(
    make_flag: Any, envs: dict[str, Environment], committed: Committed
) -> tuple[ChangeRequest, Flag, Environment]:
    prod = envs["production"]
    with committed():
        services.update_environment(prod, protected=True, actor=None, reason="lock")
        flag = make_flag("checkout.new-flow")
        services.update_flag_state(
            flag, prod, enabled=True, fallthrough={"variant": "off"}, actor=None,
            reason="baseline", change_request=GrantedApproval(),
        )  # fmt: skip
        child = make_flag("checkout.express")
        services.update_flag_state(
            child, prod, enabled=True, fallthrough={"variant": "on"}, actor=None,
            prerequisites=[{"flag": "checkout.new-flow", "variants": ["on"]}],
            reason="baseline", change_request=GrantedApproval(),
        )  # fmt: skip
    alice = h.user(
        "alice",
        perms=("flagapp.change_flagstate", "flagapp.change_protected_environment"),
    )
    state = FlagState.objects.get(flag=flag, environment=prod)
    with pytest.raises(ApprovalRequired) as info:
        services.update_flag_state(
            flag, prod, actor=alice, reason="pros first", expected_version=state.version,
            rules=[{"id": "pros", "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                    "serve": {"variant": "on"}}],
        )  # fmt: skip
    cr = crs.propose_from(info.value, author=alice, reason="pros first")
    return cr, flag, prod


def test_playground__pending_change_request__before_and_after_nothing_written(
    admin_client: Client, pending: tuple[ChangeRequest, Flag, Environment]
) -> None:
    cr, flag, prod = pending
    state = FlagState.objects.get(flag=flag, environment=prod)
    history = FlagState.history.count()
    snap = latest("production")
    assert snap is not None
    response = _post(
        admin_client,
        environment="production",
        context=json.dumps({"targetingKey": "u1", "plan": "pro"}),
        change_request=str(cr.pk),
    )
    assert response.status_code == 200
    proposal = response.context["proposal"]
    assert "error" not in proposal
    rows = {r["key"]: r for r in proposal["rows"]}
    assert rows["checkout.new-flow"]["before"]["variant"] == "off"
    assert rows["checkout.new-flow"]["after"]["variant"] == "on"
    assert rows["checkout.new-flow"]["after"]["rule"] == "pros"
    assert rows["checkout.express"]["before"]["reason"] == "PREREQUISITE_FAILED"
    assert rows["checkout.express"]["after"]["variant"] == "on"  # a dependent flag moves too
    assert proposal["moved"] == 2
    # the main table is still the published snapshot
    main = {r["flag"]: r for r in response.context["rows"]}
    assert main["checkout.new-flow"]["variant"] == "off"
    # a dry run: nothing stored, nothing published, the request still pending
    assert FlagState.objects.get(pk=state.pk).version == state.version
    assert FlagState.history.count() == history
    assert latest("production") == snap
    cr.refresh_from_db()
    assert cr.status == "pending"
    # a context the change does not move: listed (its explanation changes), nothing moves
    response = _post(
        admin_client, environment="production", context='{"targetingKey": "u2", "plan": "free"}',
        change_request=str(cr.pk),
    )  # fmt: skip
    rows = {r["key"]: r for r in response.context["proposal"]["rows"]}
    assert rows["checkout.new-flow"]["after"]["variant"] == "off"
    assert not any(r["differs"] for r in rows.values())
    assert response.context["proposal"]["moved"] == 0


def test_playground__change_request_of_other_environment__asks_for_that_environment(
    admin_client: Client, pending: tuple[ChangeRequest, Flag, Environment]
) -> None:
    cr, _, _ = pending
    response = _post(admin_client, environment="staging", context="{}", change_request=str(cr.pk))
    assert "is for environment production" in response.context["proposal"]["error"]


def test_playground__stale_change_request__error_not_result(
    admin_client: Client, pending: tuple[ChangeRequest, Flag, Environment], committed: Committed
) -> None:
    cr, flag, prod = pending
    with committed():
        services.update_flag_state(
            flag, prod, fallthrough={"variant": "on"}, actor=None, reason="meanwhile",
            change_request=GrantedApproval(),
        )  # fmt: skip
    response = _post(
        admin_client, environment="production", context="{}", change_request=str(cr.pk)
    )
    assert "cannot be applied as it stands" in response.context["proposal"]["error"]


def test_playground__change_requests__listed_only_for_users_who_may_see_them(
    client: Client, pending: tuple[ChangeRequest, Flag, Environment]
) -> None:
    cr, _, _ = pending
    viewer: User = h.user("viewer", perms=("flagapp.view_flag", "flagapp.view_flagstate"))
    client.force_login(viewer)
    response = client.get(URL)
    assert str(cr.pk) not in dict(response.context["form"].fields["change_request"].choices)
    response = _post(client, environment="production", context="{}", change_request=str(cr.pk))
    assert "change_request" in response.context["form"].errors
    reviewer = h.user(
        "rev", perms=("flagapp.view_flag", "flagapp.view_flagstate",
                      "flagapp.approve_changerequest"),
    )  # fmt: skip
    client.force_login(reviewer)
    response = client.get(reverse("admin:flagapp_playground"))
    assert str(cr.pk) in dict(response.context["form"].fields["change_request"].choices)


def test_playground__get_parameters__environment_and_flag_prefilled(
    admin_client: Client, shapes: Environment
) -> None:
    form = admin_client.get(URL, {"environment": "production", "flag": "shape.split"}).context[
        "form"
    ]
    assert (form["environment"].value(), form["flag"].value()) == ("production", "shape.split")
