"""Governance guards that live in the services, so the admin and the API apply the same
ones (issue 12 part 1, issue 13 parts 3 and 7): archiving pauses running rollouts and
withdraws open change requests (and says so); starting a rollout never lowers the
exposure a flag already has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from flagapp import services
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, Flag, FlagState, RolloutPlan
from flagapp.rollouts import controller
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db

TEN = {
    "rollout": {"weights": [{"variant": "on", "weight": 1000}, {"variant": "off", "weight": 9000}]}
}


@pytest.fixture
def api(db: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("admin", "a@example.com", "pw"))
    return client


@pytest.fixture
def busy_flag(make_flag: Callable[..., Flag], envs: dict[str, Any]) -> Flag:
    """A flag with a running rollout in staging and a pending change request."""
    flag = make_flag("checkout.busy")
    services.update_flag_state(flag, envs["staging"], enabled=True, actor=None, reason="on")
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    controller.start(plan, actor=None, reason="go")
    author = User.objects.create_superuser("author", "x@example.com", "pw")
    version = FlagState.objects.get(flag=flag, environment=envs["production"]).version
    crs.propose(
        {
            "operation": "update_flag_state",
            "flag": flag.key,
            "environment": "production",
            "params": {"enabled": True, "expected_version": version},
        },
        author=author,
        reason="launch",
        compute_blast_radius=False,
    )
    return flag


def test_archive_notes__running_rollout_and_open_request__both_announced(busy_flag: Flag) -> None:
    notes = services.archive_notes(busy_flag)
    assert any("rollout" in n and "archiving pauses it" in n for n in notes)
    assert any("change request" in n and "archiving withdraws it" in n for n in notes)


def test_archive_flag__service__pauses_rollouts_and_withdraws_requests(busy_flag: Flag) -> None:
    services.archive_flag(busy_flag, actor=None, reason="retired")
    assert RolloutPlan.objects.get(flag=busy_flag).state == "paused"
    assert ChangeRequest.objects.get(flag=busy_flag).status == ChangeRequest.STATUS_WITHDRAWN


def test_archive_flag__through_the_api__same_guard(api: APIClient, busy_flag: Flag) -> None:
    response = api.patch(
        f"/api/v1/flags/{busy_flag.key}/",
        {"archived": True},
        format="json",
        **write_headers(busy_flag.version),
    )
    assert response.status_code == 200, response.content
    assert RolloutPlan.objects.get(flag=busy_flag).state == "paused"
    assert ChangeRequest.objects.get(flag=busy_flag).status == ChangeRequest.STATUS_WITHDRAWN


def test_start_rollout__below_current_exposure__refused_naming_steps(
    make_flag: Callable[..., Flag], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.ten")
    services.update_flag_state(
        flag, envs["staging"], enabled=True, fallthrough=TEN, actor=None, reason="10% by hand"
    )
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    with pytest.raises(services.FlagValidationError) as info:
        controller.start_rollout(plan, actor=None, reason="go")
    assert "would lower exposure" in info.value.message_dict["steps"][0]
    plan.refresh_from_db()
    assert plan.state == "draft"


def test_start_rollout__through_the_api__400_on_steps_flag_unchanged(
    api: APIClient, make_flag: Callable[..., Flag], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.ten")
    services.update_flag_state(
        flag, envs["staging"], enabled=True, fallthrough=TEN, actor=None, reason="10% by hand"
    )
    plan = controller.create_plan(flag, envs["staging"], treatment="on", control="off")
    response = api.post(f"/api/v1/rollouts/{plan.pk}/start/", {"reason": "go"}, format="json")
    assert response.status_code == 400
    assert "would lower exposure" in response.json()["steps"][0]
    assert FlagState.objects.get(flag=flag, environment=envs["staging"]).fallthrough == TEN
