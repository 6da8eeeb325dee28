"""The authorization matrix of the management API.

Every endpoint and method is refused to a request without credentials (401), to a user
without the model permission (403) and — for anything scoped to the protected production
environment — to a user holding every model permission but not
``flagapp.change_protected_environment`` (403). Each refusal leaves the data unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from flagapp import services
from flagapp.models import Environment, Flag, FlagState, Segment
from flagapp.models.sdk import SdkKey
from flagapp.services.sdk_keys import create_sdk_key
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import EDITOR, release_expiry, write_headers

pytestmark = pytest.mark.django_db

Call = Callable[[APIClient], Any]


@pytest.fixture
def world(api_flag: Any, envs: Any) -> dict[str, Any]:
    """A flag, a segment, an SDK key per environment; production protected."""
    flag = api_flag()
    services.update_environment(envs["production"], protected=True, actor=None, reason="setup")
    segment = services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    staging_key, _ = create_sdk_key(envs["staging"], name="s", actor=None, reason="tests")
    prod_key, _ = create_sdk_key(envs["production"], name="p", actor=None, reason="tests")
    return {"flag": flag, "segment": segment, "staging_key": staging_key, "prod_key": prod_key}


def _fingerprint() -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        list(Flag.objects.values_list("key", "name", "archived")),
        list(FlagState.objects.values_list("pk", "enabled", "version")),
        list(Segment.objects.values_list("key", "name")),
        list(Environment.objects.values_list("key", "name", "protected")),
        list(SdkKey.objects.values_list("pk", "revoked_at")),
    )


def _calls(world: dict[str, Any]) -> dict[str, Call]:
    flag = "/api/v1/flags/checkout.new-flow/"
    state = flag + "environments/"
    h = write_headers(1)
    staging_key = world["staging_key"].pk
    return {
        "list flags": lambda c: c.get("/api/v1/flags/"),
        "get flag": lambda c: c.get(flag),
        "create flag": lambda c: c.post(
            "/api/v1/flags/",
            {"key": "team.other", "name": "o", "owner": "payments", "expires_on": release_expiry()},
            format="json",
            **h,
        ),
        "patch flag": lambda c: c.patch(flag, {"name": "n"}, format="json", **h),
        "delete flag": lambda c: c.delete(flag, **h),
        "list states": lambda c: c.get(state),
        "get state": lambda c: c.get(state + "staging/"),
        "patch state": lambda c: c.patch(state + "staging/", {"enabled": True}, format="json", **h),
        "list segments": lambda c: c.get("/api/v1/segments/"),
        "create segment": lambda c: c.post(
            "/api/v1/segments/", {"key": "s2", "name": "S2"}, format="json", **h
        ),
        "patch segment": lambda c: c.patch(
            "/api/v1/segments/beta/", {"name": "B"}, format="json", **h
        ),
        "delete segment": lambda c: c.delete("/api/v1/segments/beta/", **h),
        "list environments": lambda c: c.get("/api/v1/environments/"),
        "create environment": lambda c: c.post(
            "/api/v1/environments/", {"key": "qa", "name": "QA"}, format="json", **h
        ),
        "patch environment": lambda c: c.patch(
            "/api/v1/environments/staging/", {"name": "S"}, format="json", **h
        ),
        "history": lambda c: c.get("/api/v1/history/"),
        "list sdk keys": lambda c: c.get("/api/v1/sdk-keys/"),
        "create sdk key": lambda c: c.post(
            "/api/v1/sdk-keys/", {"environment": "staging"}, format="json", **h
        ),
        "revoke sdk key": lambda c: c.post(f"/api/v1/sdk-keys/{staging_key}/revoke/", **h),
    }


def _production_calls(world: dict[str, Any]) -> dict[str, Call]:
    state = "/api/v1/flags/checkout.new-flow/environments/production/"
    prod_key = world["prod_key"].pk

    def patch_state(c: APIClient) -> Any:
        version = FlagState.objects.get(environment__key="production").version
        return c.patch(
            state, {"enabled": False, "rules": []}, format="json", **write_headers(version)
        )

    def patch_env(c: APIClient) -> Any:
        version = Environment.objects.get(key="production").version
        return c.patch(
            "/api/v1/environments/production/",
            {"name": "P"},
            format="json",
            **write_headers(version),
        )

    return {
        "patch production state": patch_state,
        "patch production environment": patch_env,
        "create production sdk key": lambda c: c.post(
            "/api/v1/sdk-keys/", {"environment": "production"}, format="json", **write_headers()
        ),
        "revoke production sdk key": lambda c: c.post(
            f"/api/v1/sdk-keys/{prod_key}/revoke/", **write_headers()
        ),
    }


def test_matrix__no_credentials__401_everywhere_nothing_changed(world: dict[str, Any]) -> None:
    before = _fingerprint()
    client = APIClient()
    results = {name: call(client).status_code for name, call in _calls(world).items()}
    assert results == dict.fromkeys(results, 401)
    assert _fingerprint() == before


def test_matrix__bad_token__401_everywhere(world: dict[str, Any]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    results = {name: call(client).status_code for name, call in _calls(world).items()}
    assert results == dict.fromkeys(results, 401)


def test_matrix__user_without_permissions__403_everywhere_nothing_changed(
    world: dict[str, Any], make_user: Any, client_for: Any
) -> None:
    before = _fingerprint()
    client = client_for(make_user())
    calls = {**_calls(world), **_production_calls(world)}
    results = {name: call(client).status_code for name, call in calls.items()}
    assert results == dict.fromkeys(results, 403)
    assert _fingerprint() == before


def test_matrix__view_only_user__reads_ok_writes_403(
    world: dict[str, Any], make_user: Any, client_for: Any
) -> None:
    from tests.flagapp.api_support import ALL_VIEW

    before = _fingerprint()
    client = client_for(make_user(*ALL_VIEW))
    for name, call in _calls(world).items():
        status = call(client).status_code
        if name.startswith(("list", "get", "history")):
            assert status == 200, name
        else:
            assert status == 403, name
    assert _fingerprint() == before


def test_matrix__editor_without_production_permission__403_on_production_nothing_changed(
    world: dict[str, Any], make_user: Any, client_for: Any
) -> None:
    before = _fingerprint()
    client = client_for(make_user(*EDITOR))
    results = {name: call(client).status_code for name, call in _production_calls(world).items()}
    assert results == dict.fromkeys(results, 403)
    assert _fingerprint() == before


def test_matrix__editor_without_production_permission__may_change_staging(
    world: dict[str, Any], make_user: Any, client_for: Any
) -> None:
    """The positive control: the refusals above are about production, not the editor."""
    client = client_for(make_user(*EDITOR))
    url = "/api/v1/flags/checkout.new-flow/environments/staging/"
    version = client.get(url).json()["version"]
    response = client.patch(url, {"enabled": True}, format="json", **write_headers(version))
    assert response.status_code == 200, response.content


def test_matrix__editor_with_production_permission__production_change_goes_to_approval(
    world: dict[str, Any], make_user: Any, client_for: Any
) -> None:
    editor = make_user(*EDITOR, "change_protected_environment")
    client = client_for(editor)
    url = "/api/v1/flags/checkout.new-flow/environments/production/"
    version = client.get(url).json()["version"]
    response = client.patch(url, {"enabled": True}, format="json", **write_headers(version))
    assert response.status_code == 202, response.content
    assert FlagState.objects.get(environment__key="production").enabled is False


def test_session_auth__logged_in_user__reads_and_csrf_enforced_on_writes(
    world: dict[str, Any], make_user: Any
) -> None:
    user = make_user(*EDITOR)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/flags/").status_code == 200
    url = "/api/v1/flags/checkout.new-flow/environments/staging/"
    response = client.patch(url, {"enabled": True}, format="json", **write_headers(1))
    assert response.status_code == 403  # no CSRF token
    assert "CSRF" in response.json()["detail"]


def test_permission_codename__exists_for_assignment(db: Any) -> None:
    assert Permission.objects.filter(
        content_type__app_label="flagapp", codename="change_protected_environment"
    ).exists()
