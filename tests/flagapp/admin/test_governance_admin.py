"""The change-request admin: pending list, diff + blast radius, approve / reject buttons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

import flagapp.admin.governance  # noqa: F401 - registers the admin (flagapp.admin does too)
from flagapp import sampling, services
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, ContextSample, Environment, Flag, FlagState
from flagapp.policy import GrantedApproval
from tests.flagapp import governance_helpers as h

PRO_RULE = {
    "id": "pro",
    "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
    "serve": {"variant": "on"},
}
LIST = "/admin/flagapp/changerequest/"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    sampling.reset()


@pytest.fixture
def users(db: Any) -> dict[str, User]:
    return {
        "alice": h.user(
            "alice",
            perms=(
                "flagapp.change_flagstate",
                "flagapp.change_protected_environment",
                "flagapp.view_changerequest",
            ),
        ),
        "bob": h.user("bob", perms=("flagapp.approve_changerequest",)),
    }


@pytest.fixture
def cr(
    make_flag: Callable[..., Flag], envs: dict[str, Environment], users: dict[str, User]
) -> ChangeRequest:
    prod = envs["production"]
    services.update_environment(prod, protected=True, actor=None, reason="lock production")
    flag = make_flag("checkout.new-flow")
    services.update_flag_state(
        flag,
        prod,
        actor=None,
        reason="baseline",
        enabled=True,
        fallthrough={"variant": "off"},
        change_request=GrantedApproval(),
    )
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=prod,
            context={"targetingKey": f"u{i}", "plan": "pro"},
            recorded_at=timezone.now(),
        )
        for i in range(4)
    )
    version = FlagState.objects.get(flag=flag, environment=prod).version
    change = {
        "operation": "update_flag_state",
        "flag": flag.key,
        "environment": "production",
        "params": {"rules": [PRO_RULE], "expected_version": version},
    }
    return crs.propose(change, author=users["alice"], reason="launch to pro")


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_changelist__default__pending_only_with_radius(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    other = {**cr.change, "params": {**cr.change["params"], "fallthrough": {"variant": "on"}}}
    crs.reject(
        crs.propose(other, author=users["alice"], reason="second"),
        reviewer=users["bob"],
        comment="dup",
    )
    page = _login(users["bob"]).get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="field-change"') == 1  # the rejected one is filtered out
    assert "4/4 (100.0%)" in html


def test_change_view__reviewer__diff_radius_and_buttons(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    html = _login(users["bob"]).get(f"{LIST}{cr.pk}/change/").content.decode()
    assert 'id="cr-approve"' in html and 'id="cr-reject"' in html
    assert "4</span> of 4" in html
    assert "off -&gt; on" in html
    assert "&quot;plan&quot;" in html or '"plan"' in html  # the proposed rule in the diff


def test_change_view__author__no_buttons_and_explanation(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    html = _login(users["alice"]).get(f"{LIST}{cr.pk}/change/").content.decode()
    assert 'id="cr-approve"' not in html
    assert "another person with the approve" in html


def test_approve_button__reviewer__applied_with_message(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    response = _login(users["bob"]).post(f"{LIST}{cr.pk}/approve/", {"comment": "ok"}, follow=True)
    assert response.status_code == 200
    cr.refresh_from_db()
    assert cr.status == "applied"
    assert "approved and applied" in response.content.decode()


def test_approve_button__author__refused_with_message(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    alice = users["alice"]
    response = _login(alice).post(f"{LIST}{cr.pk}/approve/", {}, follow=True)
    cr.refresh_from_db()
    assert cr.status == "pending"
    assert "cannot review" in response.content.decode()


def test_reject_button__get__refused(cr: ChangeRequest, users: dict[str, User]) -> None:
    assert _login(users["bob"]).get(f"{LIST}{cr.pk}/reject/").status_code == 403


def test_state_page__protected_environment_edit__change_request_created_and_linked(
    make_flag: Callable[..., Flag], envs: dict[str, Environment], users: dict[str, User]
) -> None:
    from django.urls import reverse

    from tests.flagapp.admin.test_admin import form_data

    prod = envs["production"]
    services.update_environment(prod, protected=True, actor=None, reason="lock production")
    flag = make_flag("checkout.new-flow")
    state = FlagState.objects.get(flag=flag, environment=prod)
    alice = users["alice"]
    from django.contrib.auth.models import Permission

    alice.user_permissions.add(Permission.objects.get(codename="view_flagstate"))
    client = _login(User.objects.get(pk=alice.pk))
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(client.get(url))
    data.update({"enabled": "on", "fallthrough": "on", "reason": "launch checkout"})
    response = client.post(url, data)
    assert response.status_code == 200  # re-rendered, unsaved
    cr = ChangeRequest.objects.get()
    assert (cr.status, cr.author, cr.reason) == ("pending", alice, "launch checkout")
    assert cr.payload["params"]["enabled"] is True
    assert cr.base_version == state.version
    assert f'href="/admin/flagapp/changerequest/{cr.pk}/change/"' in response.content.decode()
    state.refresh_from_db()
    assert state.enabled is False


def test_state_page__direct_targeting_change__blast_radius_shown_then_confirmed(
    make_flag: Callable[..., Flag], envs: dict[str, Environment], committed: Any
) -> None:
    import re

    from django.urls import reverse

    from flagapp.admin.governance import CONFIRM_FIELD
    from tests.flagapp.admin.test_admin import form_data

    staging = envs["staging"]
    with committed():
        flag = make_flag("checkout.new-flow")
        services.update_flag_state(
            flag, staging, actor=None, reason="on", enabled=True, fallthrough={"variant": "off"}
        )
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=staging, context={"targetingKey": f"u{i}"}, recorded_at=timezone.now()
        )
        for i in range(6)
    )
    client = _login(h.user("root", staff=True))
    User.objects.filter(username="root").update(is_superuser=True)
    state = FlagState.objects.get(flag=flag, environment=staging)
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(client.get(url))
    data.update({"fallthrough": "on", "reason": "everyone on staging"})
    first = client.post(url, data)
    html = first.content.decode()
    assert first.status_code == 200 and 'id="blast-radius-preview"' in html
    assert "6 of 6 recent contexts (100.0%)" in html and "off -&gt; on: 6" in html
    state.refresh_from_db()
    assert state.fallthrough == {"variant": "off"}  # not saved before confirmation
    token = re.search(rf'name="{CONFIRM_FIELD}" value="([0-9a-f]+)"', html).group(1)
    # an edited form needs a new confirmation
    changed = {**data, "reason": "something else", CONFIRM_FIELD: token}
    assert client.post(url, changed).status_code == 200
    confirmed = client.post(url, {**data, CONFIRM_FIELD: token})
    assert confirmed.status_code == 302
    state.refresh_from_db()
    assert state.fallthrough == {"variant": "on"}


def test_state_page__change_moving_nobody__saved_without_confirmation(
    make_flag: Callable[..., Flag], envs: dict[str, Environment]
) -> None:
    from django.urls import reverse

    from tests.flagapp.admin.test_admin import form_data

    staging = envs["staging"]
    flag = make_flag("checkout.new-flow")  # disabled: serves the caller's default
    ContextSample.objects.create(
        environment=staging, context={"targetingKey": "u1"}, recorded_at=timezone.now()
    )
    client = _login(h.user("root", staff=True))
    User.objects.filter(username="root").update(is_superuser=True)
    state = FlagState.objects.get(flag=flag, environment=staging)
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(client.get(url))
    data.update({"fallthrough": "on", "reason": "prepare, still off"})
    assert client.post(url, data).status_code == 302


def test_propose__identical_change_same_base__refused_naming_the_pending_one(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    from flagapp.exceptions import DuplicateChangeRequest

    with pytest.raises(DuplicateChangeRequest) as caught:
        crs.propose(cr.change, author=users["alice"], reason="again")
    assert caught.value.existing_id == cr.pk
    assert ChangeRequest.objects.count() == 1


def test_state_page__second_identical_proposal__error_links_the_pending_request(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    from django.urls import reverse

    from tests.flagapp.admin.test_admin import form_data

    client = _login(users["alice"])
    users["alice"].user_permissions.add(
        *h.user("tmp2", perms=("flagapp.view_flagstate",)).user_permissions.all()
    )
    state = FlagState.objects.get(flag=cr.flag, environment=cr.environment)
    url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
    data = form_data(client.get(url))
    data.update(
        {
            "rules-0-conditions": "plan eq pro",
            "rules-0-serve": "on",
            "rules-0-rule_id": "pro",
            "rules-0-order": "0",
            "reason": "same again",
        }
    )
    response = client.post(url, data)
    html = response.content.decode()
    from tests.flagapp.admin.test_admin import post_errors

    assert 'id="cr-duplicate"' in html, post_errors(response)
    assert f'href="/admin/flagapp/changerequest/{cr.pk}/change/"' in html
    assert ChangeRequest.objects.count() == 1


def test_withdraw_button__author__withdrawn_and_reviewer_cannot_approve(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    alice, bob = _login(users["alice"]), _login(users["bob"])
    assert 'id="cr-withdraw"' in alice.get(f"{LIST}{cr.pk}/change/").content.decode()
    assert 'id="cr-withdraw"' not in bob.get(f"{LIST}{cr.pk}/change/").content.decode()
    bob.post(f"{LIST}{cr.pk}/withdraw/")
    cr.refresh_from_db()
    assert cr.status == ChangeRequest.STATUS_PENDING
    alice.post(f"{LIST}{cr.pk}/withdraw/")
    cr.refresh_from_db()
    assert cr.status == ChangeRequest.STATUS_WITHDRAWN
    bob.post(f"{LIST}{cr.pk}/approve/")
    cr.refresh_from_db()
    assert cr.status == ChangeRequest.STATUS_WITHDRAWN


def test_change_view__stale_base__says_so_and_approve_refused(
    cr: ChangeRequest, users: dict[str, User]
) -> None:
    services.set_flag_enabled(cr.flag, cr.environment, False, actor=None, reason="incident")
    bob = _login(users["bob"])
    html = bob.get(f"{LIST}{cr.pk}/change/").content.decode()
    assert 'id="cr-stale"' in html and 'id="cr-approve"' not in html
    bob.post(f"{LIST}{cr.pk}/approve/")
    cr.refresh_from_db()
    assert cr.status == ChangeRequest.STATUS_PENDING  # refused, not applied or conflicted


def test_flag_page_and_list__pending_request__banner_column_and_filter(
    cr: ChangeRequest, users: dict[str, User], admin_client: Client
) -> None:
    from django.urls import reverse

    page = admin_client.get(reverse("admin:flagapp_flag_change", args=[cr.flag_id]))
    html = page.content.decode()
    assert 'id="flagapp-pending-banner"' in html
    assert f"Change request #{cr.pk}</a>: targeting change in production" in html
    listing = admin_client.get(reverse("admin:flagapp_flag_changelist")).content.decode()
    assert "1 pending" in listing
    waiting = admin_client.get(reverse("admin:flagapp_flag_changelist") + "?pending=yes")
    assert cr.flag.key in waiting.content.decode()
    none = admin_client.get(reverse("admin:flagapp_flag_changelist") + "?pending=no")
    assert f">{cr.flag.key}<" not in none.content.decode()
