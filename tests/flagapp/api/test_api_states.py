"""Per-environment flag state through the API: rules, kill switch, versions, approval."""

from __future__ import annotations

from typing import Any

import pytest

from flagapp import services
from flagapp.models import FlagState
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db

URL = "/api/v1/flags/checkout.new-flow/environments/"

RULES = [
    {
        "id": "pro",
        "description": "pro plans",
        "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
        "serve": {"variant": "on"},
    },
    {
        "when": [],
        "serve": {
            "rollout": {
                "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]
            }
        },
    },
]


def _get(client: Any, env: str = "staging") -> dict[str, Any]:
    response = client.get(f"{URL}{env}/")
    assert response.status_code == 200, response.content
    return response.json()


def test_list_states__flag__one_per_environment_in_order(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert [s["environment"] for s in response.json()] == ["development", "staging", "production"]


def test_retrieve_state__unknown_environment__404(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    assert admin_client.get(f"{URL}nowhere/").status_code == 404


def test_patch_state__rules_and_enable__stored_in_order_with_ids(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    state = _get(admin_client)
    response = admin_client.patch(
        f"{URL}staging/",
        {"enabled": True, "rules": RULES},
        format="json",
        **write_headers(state["version"], reason="launch to pro"),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["enabled"] is True
    assert data["version"] == state["version"] + 1
    assert response["ETag"] == f'"{data["version"]}"'
    assert data["rules"][0]["id"] == "pro"
    assert data["rules"][1]["id"]  # generated
    assert data["rules"][1]["serve"]["rollout"]["weights"][0] == {"variant": "on", "weight": 10}
    stored = FlagState.objects.get(flag__key="checkout.new-flow", environment__key="staging")
    assert stored.history.first().history_change_reason == "launch to pro"


def test_patch_state__stale_version__409_current_version_and_nothing_written(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    v = _get(admin_client)["version"]
    first = admin_client.patch(
        f"{URL}staging/", {"enabled": True}, format="json", **write_headers(v)
    )
    assert first.status_code == 200
    second = admin_client.patch(
        f"{URL}staging/", {"rules": RULES}, format="json", **write_headers(v)
    )
    assert second.status_code == 409
    assert second.json() == {"detail": second.json()["detail"], "current_version": v + 1}
    assert _get(admin_client)["rules"] == []


def test_patch_state__rule_serves_unknown_variant__400_on_rules_nothing_written(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    v = _get(admin_client)["version"]
    bad = [{"when": [], "serve": {"variant": "nope"}}]
    response = admin_client.patch(
        f"{URL}staging/", {"rules": bad}, format="json", **write_headers(v)
    )
    assert response.status_code == 400, response.content
    assert "rules" in response.json()
    assert _get(admin_client)["version"] == v


def test_patch_state__unknown_operator__400(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    v = _get(admin_client)["version"]
    bad = [{"when": [{"attr": "a", "op": "resembles", "values": [1]}], "serve": {"variant": "on"}}]
    response = admin_client.patch(
        f"{URL}staging/", {"rules": bad}, format="json", **write_headers(v)
    )
    assert response.status_code == 400


def test_put_state__missing_parts__400_naming_them(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    v = _get(admin_client)["version"]
    response = admin_client.put(
        f"{URL}staging/", {"enabled": True}, format="json", **write_headers(v)
    )
    assert response.status_code == 400
    assert set(response.json()) == {"fallthrough", "prerequisites", "rules"}


def test_put_state__all_parts__replaced(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    v = _get(admin_client)["version"]
    body = {"enabled": True, "fallthrough": {"variant": "on"}, "prerequisites": [], "rules": []}
    response = admin_client.put(f"{URL}staging/", body, format="json", **write_headers(v))
    assert response.status_code == 200, response.content
    assert response.json()["fallthrough"] == {"variant": "on"}


def test_patch_state__protected_environment__202_change_request_nothing_applied(
    admin_client: Any, api_flag: Any, envs: Any
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="setup")
    api_flag()
    v = _get(admin_client, "production")["version"]
    response = admin_client.patch(
        f"{URL}production/",
        {"enabled": True},
        format="json",
        **write_headers(v, reason="go live"),
    )
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["change"]["operation"] == "update_flag_state"
    assert data["change"]["params"]["expected_version"] == v
    assert data["change_request"]["status"] == "pending"
    assert data["change_request"]["environment"] == "production"
    assert _get(admin_client, "production")["enabled"] is False


def test_patch_state__kill_switch_in_protected_environment__applied_directly(
    admin_client: Any, api_flag: Any, envs: Any
) -> None:
    flag = api_flag()
    services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="setup")
    services.update_environment(envs["production"], protected=True, actor=None, reason="setup")
    v = _get(admin_client, "production")["version"]
    response = admin_client.patch(
        f"{URL}production/",
        {"enabled": False},
        format="json",
        **write_headers(v, reason="incident 42"),
    )
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False


def test_patch_state__publishes_snapshot_on_commit(
    admin_client: Any, api_flag: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from flagapp import snapshot

    api_flag()
    v = _get(admin_client)["version"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.patch(
            f"{URL}staging/", {"enabled": True}, format="json", **write_headers(v)
        )
    assert response.status_code == 200
    latest = snapshot.latest("staging")
    assert latest is not None
    assert '"checkout.new-flow"' in latest.document
