"""Promote between environments from the admin (issue 13 part 6): a preview per flag
(before -> after in words), a reason, governed by the services (a protected target turns
each flag into a change request), permission-checked."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from flagapp import services
from flagapp.exceptions import ApprovalRequired, FlagValidationError
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, Environment, FlagState
from flagapp.policy import GrantedApproval
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db

URL = "/admin/flagapp/environment/promote/"
PROS = {"id": "pros", "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
        "serve": {"variant": "on"}}  # fmt: skip
EDITOR_PERMS = ("flagapp.view_environment", "flagapp.view_flag", "flagapp.view_flagstate",
                "flagapp.change_flagstate")  # fmt: skip


def _split(on: int) -> dict[str, Any]:
    return {"rollout": {"weights": [{"variant": "on", "weight": on},
                                    {"variant": "off", "weight": 10_000 - on}]}}  # fmt: skip


@pytest.fixture
def world(make_flag: Any, envs: dict[str, Environment]) -> dict[str, Any]:
    """staging: a.flag on with a rule and 25%, b.flag on; production: both off."""
    a, b = make_flag("a.flag"), make_flag("b.flag")
    make_flag("c.flag")  # equal in both: unchanged
    staging = envs["staging"]
    services.update_flag_state(
        a, staging, enabled=True, rules=[PROS], fallthrough=_split(2500), actor=None, reason="x"
    )
    services.set_flag_enabled(b, staging, True, actor=None, reason="x")
    return {"a": a, "b": b, **envs}


def _client(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _state(flag: Any, env: Environment) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


def test_promotion_plan__staging_to_production__before_after_per_changed_flag(
    world: dict[str, Any],
) -> None:
    steps = services.promotion_plan(world["staging"], world["production"])
    changed = {s.flag: s for s in steps if s.changed}
    assert sorted(changed) == ["a.flag", "b.flag"]
    assert changed["a.flag"].before["enabled"] is False  # type: ignore[index]
    assert changed["a.flag"].after["rules"][0]["id"] == "pros"
    assert [s.flag for s in steps if not s.changed] == ["c.flag"]
    assert not any(s.needs_approval for s in steps)


def test_promotion_plan__same_environment__error_names_target(world: dict[str, Any]) -> None:
    with pytest.raises(FlagValidationError) as info:
        services.promotion_plan(world["staging"], world["staging"])
    assert "target" in info.value.message_dict


def test_promote_environment__protected_target__proposals_via_callback_rest_applied(
    world: dict[str, Any], make_flag: Any
) -> None:
    prod = world["production"]
    hot = make_flag("hot.flag", risk="high")
    services.set_flag_enabled(hot, world["staging"], True, actor=None, reason="x",
                              change_request=GrantedApproval())  # fmt: skip
    seen: list[str] = []
    result = services.promote_environment(
        world["staging"], prod, actor=None, reason="release 42",
        on_approval_required=lambda exc: seen.append(exc.change["flag"]) or "cr",
    )  # fmt: skip
    assert result.applied == ["a.flag", "b.flag"]
    assert result.proposed == [("hot.flag", "cr")] and seen == ["hot.flag"]
    assert _state(hot, prod).enabled is False
    assert _state(world["a"], prod).enabled is True
    with pytest.raises(ApprovalRequired):  # without a callback: all or nothing, as before
        services.copy_environment(world["staging"], prod, actor=None, reason="again")


def test_promote_page__preview__before_and_after_in_words(world: dict[str, Any]) -> None:
    editor = h.user("editor", perms=EDITOR_PERMS)
    page = _client(editor).get(URL, {"source": "staging", "target": "production",
                                     "include_enabled": "on"})  # fmt: skip
    html = page.content.decode()
    assert page.status_code == 200
    assert "2 flag(s) change in production; 1 already match" in html
    assert "rule: plan in pro → on" in html
    assert "otherwise: on 25% · off 75%" in html
    assert "off (serves the caller&#x27;s default)" in html
    assert FlagState.objects.filter(environment=world["production"], enabled=True).count() == 0


def test_promote_page__apply_with_reason__selected_flags_promoted_with_history(
    world: dict[str, Any],
) -> None:
    editor = h.user("editor", perms=EDITOR_PERMS)
    client = _client(editor)
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    digest = client.get(URL, form).context["digest"]
    refused = client.post(URL, {**form, "digest": digest, "flags": ["a.flag"], "_apply": "1"})
    assert refused.context["apply_form"].errors["reason"]  # no reason: nothing done
    assert _state(world["a"], world["production"]).enabled is False
    done = client.post(URL, {**form, "digest": digest, "flags": ["a.flag"], "_apply": "1",
                             "reason": "release 42"})  # fmt: skip
    assert done.status_code == 302
    state = _state(world["a"], world["production"])
    assert state.enabled is True and state.rules.get().rule_id == "pros"
    latest = state.history.latest()
    assert latest.history_user == editor
    assert latest.history_change_reason == "promote from staging: release 42"
    assert _state(world["b"], world["production"]).enabled is False  # not ticked


def test_promote_page__stale_digest__new_preview_nothing_applied(world: dict[str, Any]) -> None:
    client = _client(h.user("editor", perms=EDITOR_PERMS))
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    page = client.post(URL, {**form, "digest": "old", "flags": ["a.flag"], "_apply": "1",
                             "reason": "release"})  # fmt: skip
    assert page.status_code == 200
    assert "changed since the preview" in page.content.decode()
    assert _state(world["a"], world["production"]).enabled is False


def test_promote_page__protected_target__change_requests_not_applied(
    world: dict[str, Any],
) -> None:
    prod = world["production"]
    services.update_environment(prod, protected=True, actor=None, reason="lock")
    editor = h.user("editor", perms=(*EDITOR_PERMS, "flagapp.change_protected_environment"))
    client = _client(editor)
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    preview = client.get(URL, form)
    assert "2 need approval" in preview.content.decode()
    client.post(URL, {**form, "digest": preview.context["digest"], "_apply": "1",
                      "flags": ["a.flag", "b.flag"], "reason": "release 42"})  # fmt: skip
    assert _state(world["a"], prod).enabled is False
    requests = ChangeRequest.objects.filter(status=ChangeRequest.STATUS_PENDING)
    assert sorted(r.flag_key for r in requests) == ["a.flag", "b.flag"]
    reviewer = h.user("reviewer", perms=(*EDITOR_PERMS, "flagapp.change_protected_environment",
                                         "flagapp.approve_changerequest"))  # fmt: skip
    crs.approve(requests.get(flag_key="a.flag"), reviewer=reviewer)
    assert _state(world["a"], prod).enabled is True


def test_promote_page__without_change_flagstate__forbidden(world: dict[str, Any]) -> None:
    viewer = h.user("viewer", perms=("flagapp.view_environment",))
    response = _client(viewer).get(URL, {"source": "staging", "target": "production"})
    assert response.status_code == 403


def test_environment_list__promote_link_and_action__open_the_page(
    world: dict[str, Any], admin_client: Any
) -> None:
    assert URL in admin_client.get("/admin/flagapp/environment/").content.decode()
    response = admin_client.post(
        "/admin/flagapp/environment/",
        {"action": "promote_from", "_selected_action": [world["staging"].pk]},
    )
    assert response.status_code == 302 and response["Location"] == f"{URL}?source=staging"
    page = admin_client.get(response["Location"])
    assert page.status_code == 200 and not page.context["form"].errors


def test_promote_page__more_changes_than_shown__rest_summarised_and_promoted(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.admin import promote

    monkeypatch.setattr(promote, "SHOWN", 1)
    client = _client(h.user("editor", perms=EDITOR_PERMS))
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    preview = client.get(URL, form)
    assert len(preview.context["rows"]) == 1
    assert "also the 1 other changed flag(s)" in preview.content.decode()
    client.post(URL, {**form, "digest": preview.context["digest"], "_apply": "1",
                      "flags": ["a.flag"], "rest": "1", "reason": "release"})  # fmt: skip
    assert _state(world["b"], world["production"]).enabled is True


def test_promote_page__second_page__its_rows_shown_apply_covers_ticked_and_the_rest(
    world: dict[str, Any], make_flag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.admin import promote

    monkeypatch.setattr(promote, "SHOWN", 1)
    d = make_flag("d.flag")
    services.set_flag_enabled(d, world["staging"], True, actor=None, reason="x")
    client = _client(h.user("editor", perms=EDITOR_PERMS))
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    preview = client.get(URL, {**form, "page": "2"})
    html = preview.content.decode()
    assert [r["flag"] for r in preview.context["rows"]] == ["b.flag"]
    assert "Flags 2\u20132 of 3" in html and "page=1" in html and "page=3" in html
    assert "also the 2 other changed flag(s) not on this page" in html
    # b.flag unticked on its page, the two others confirmed through "rest"
    done = client.post(URL, {**form, "page": "2", "digest": preview.context["digest"],
                             "_apply": "1", "rest": "1", "reason": "release"})  # fmt: skip
    assert done.status_code == 302
    prod = world["production"]
    assert _state(world["a"], prod).enabled and _state(d, prod).enabled
    assert _state(world["b"], prod).enabled is False


def test_promote_page__many_flags__queries_do_not_grow_and_shown_rows_decoded_only(
    world: dict[str, Any], make_flag: Any, monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:  # fmt: skip
    from django.db import connection
    from django.db.models import JSONField
    from django.test.utils import CaptureQueriesContext

    from flagapp.admin import promote

    monkeypatch.setattr(promote, "SHOWN", 2)
    client = _client(h.user("editor", perms=EDITOR_PERMS))
    form = {"source": "staging", "target": "production", "include_enabled": "on"}
    client.get(URL, form)
    with CaptureQueriesContext(connection) as few:
        client.get(URL, form)
    for i in range(30):
        flag = make_flag(f"many.{i:02d}")
        services.update_flag_state(flag, world["staging"], enabled=True, rules=[PROS],
                                   actor=None, reason="x")  # fmt: skip
    decoded: list[str] = []
    from_db_value = JSONField.from_db_value

    def counting(self: JSONField, value: Any, expression: Any, connection: Any) -> Any:
        decoded.append(self.name)
        return from_db_value(self, value, expression, connection)

    monkeypatch.setattr(JSONField, "from_db_value", counting)
    with django_assert_num_queries(len(few.captured_queries)):
        page = client.get(URL, form)
    assert "32 flag(s) change in production" in page.content.decode()
    assert decoded == []  # the states are compared as stored text; two rows decoded lazily
    assert len(page.context["rows"]) == 2
