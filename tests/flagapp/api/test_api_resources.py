"""Segments, environments, history and SDK keys through the management API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from flagapp import services
from flagapp.models import Environment, FlagState, Segment
from flagapp.models.sdk import SdkKey
from flagapp.sdk.keys import authenticate_token, hash_token
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db


# --- segments ---------------------------------------------------------------------------


def test_segment__create_patch_delete__round_trip(admin_client: Any, envs: Any) -> None:
    created = admin_client.post(
        "/api/v1/segments/",
        {"key": "beta-testers", "name": "Beta", "include": ["u1"], "conditions": []},
        format="json",
        **write_headers(),
    )
    assert created.status_code == 201, created.content
    v = created.json()["version"]
    patched = admin_client.patch(
        "/api/v1/segments/beta-testers/",
        {"exclude": ["u2"]},
        format="json",
        **write_headers(v),
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["exclude"] == ["u2"]
    assert patched.json()["version"] == v + 1
    stale = admin_client.delete("/api/v1/segments/beta-testers/", **write_headers(v))
    assert stale.status_code == 409
    assert stale.json()["current_version"] == v + 1
    deleted = admin_client.delete("/api/v1/segments/beta-testers/", **write_headers(v + 1))
    assert deleted.status_code == 204
    assert not Segment.objects.exists()


def test_segment__retry_of_committed_patch_with_stale_version__200_nothing_written(
    admin_client: Any, envs: Any
) -> None:
    """Issue 10 ("a client whose write committed always learns that it committed") for a
    resource versioned by its history: the retried PATCH (same body, the version it had)
    gets 200 and the current version; a different stale PATCH still gets 409."""
    created = admin_client.post(
        "/api/v1/segments/",
        {"key": "beta-testers", "name": "Beta", "include": ["u1"], "conditions": []},
        format="json",
        **write_headers(),
    )
    v = created.json()["version"]
    body = {"exclude": ["u2"], "conditions": [{"attr": "plan", "op": "in", "values": ["pro"]}]}
    first = admin_client.patch(
        "/api/v1/segments/beta-testers/", body, format="json", **write_headers(v)
    )
    assert first.status_code == 200, first.content
    retry = admin_client.patch(
        "/api/v1/segments/beta-testers/", body, format="json", **write_headers(v)
    )
    assert retry.status_code == 200, retry.content
    assert retry.json()["version"] == first.json()["version"] == v + 1
    other = admin_client.patch(
        "/api/v1/segments/beta-testers/", {"exclude": []}, format="json", **write_headers(v)
    )
    assert other.status_code == 409


def test_segment__bad_condition__400_on_conditions(admin_client: Any, envs: Any) -> None:
    response = admin_client.post(
        "/api/v1/segments/",
        {"key": "s", "name": "S", "conditions": [{"attr": "x", "op": "nope", "values": [1]}]},
        format="json",
        **write_headers(),
    )
    assert response.status_code == 400
    assert "conditions" in response.json()


def test_segment__used_by_a_rule__delete_refused_400(
    admin_client: Any, api_flag: Any, envs: Any
) -> None:
    flag = api_flag()
    segment = services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    services.update_flag_state(
        flag,
        envs["staging"],
        rules=[{"when": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "on"}}],
        actor=None,
        reason="setup",
    )
    v = admin_client.get("/api/v1/segments/beta/").json()["version"]
    response = admin_client.delete("/api/v1/segments/beta/", **write_headers(v))
    assert response.status_code == 400
    assert Segment.objects.filter(pk=segment.pk).exists()


# --- environments ------------------------------------------------------------------------


def test_environment__create__every_flag_gets_a_disabled_state(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    response = admin_client.post(
        "/api/v1/environments/",
        {"key": "qa", "name": "QA", "order": 5},
        format="json",
        **write_headers(),
    )
    assert response.status_code == 201, response.content
    assert response["ETag"] == f'"{response.json()["version"]}"'
    state = FlagState.objects.get(environment__key="qa")
    assert state.enabled is False


def test_environment__duplicate_key__400(admin_client: Any, envs: Any) -> None:
    response = admin_client.post(
        "/api/v1/environments/", {"key": "staging", "name": "x"}, format="json", **write_headers()
    )
    assert response.status_code == 400
    assert "key" in response.json()


def test_environment__protect_then_unprotect__unprotect_needs_approval(
    admin_client: Any, envs: Any
) -> None:
    url = "/api/v1/environments/production/"
    v = admin_client.get(url).json()["version"]
    protect = admin_client.patch(url, {"protected": True}, format="json", **write_headers(v))
    assert protect.status_code == 200, protect.content
    assert protect.json()["protected"] is True
    unprotect = admin_client.patch(
        url, {"protected": False}, format="json", **write_headers(protect.json()["version"])
    )
    assert unprotect.status_code == 202
    assert Environment.objects.get(key="production").protected is True


def test_environment__delete__405(admin_client: Any, envs: Any) -> None:
    response = admin_client.delete("/api/v1/environments/staging/", **write_headers(1))
    assert response.status_code == 405


def test_environment__list_filter_protected__only_protected(admin_client: Any, envs: Any) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="x")
    data = admin_client.get("/api/v1/environments/?protected=true").json()
    assert [e["key"] for e in data["results"]] == ["production"]


# --- history -----------------------------------------------------------------------------


def _history(client: Any, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/history/?{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_history__api_changes__listed_newest_first_with_user_and_reason(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    url = "/api/v1/flags/checkout.new-flow/environments/staging/"
    v = admin_client.get(url).json()["version"]
    admin_client.patch(url, {"enabled": True}, format="json", **write_headers(v, "turn on"))
    entries = _history(admin_client, "flag=checkout.new-flow")
    newest = entries[0]
    assert newest["model"] == "flagstate"
    assert newest["object"] == "checkout.new-flow@staging"
    assert newest["environment"] == "staging"
    assert newest["action"] == "changed"
    assert newest["user"] == "admin"
    assert newest["reason"] == "turn on"
    dates = [e["date"] for e in entries]
    assert dates == sorted(dates, reverse=True)
    assert {e["model"] for e in entries} == {"flag", "variant", "flagstate"}


def test_history__filters__flag_environment_user_model_and_dates(
    admin_client: Any, api_flag: Any, make_user: Any, client_for: Any
) -> None:
    from tests.flagapp.api_support import EDITOR

    api_flag()
    api_flag("search.ranking-v2", flag_type="experiment")
    editor = make_user(*EDITOR, username="erin")
    url = "/api/v1/flags/search.ranking-v2/environments/production/"
    v = admin_client.get(url).json()["version"]
    client_for(editor).patch(url, {"enabled": True}, format="json", **write_headers(v, "exp"))

    by_user = _history(admin_client, "user=erin")
    assert [(e["object"], e["reason"]) for e in by_user] == [
        ("search.ranking-v2@production", "exp")
    ]
    assert _history(admin_client, "environment=production&flag=checkout.new-flow") != []
    assert all(
        e["flag"] == "checkout.new-flow" for e in _history(admin_client, "flag=checkout.new-flow")
    )
    assert {e["model"] for e in _history(admin_client, "model=variant")} == {"variant"}
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    assert _history(admin_client, f"since={future.replace('+', '%2B')}") == []
    assert _history(admin_client, f"until={future.replace('+', '%2B')}") != []


def test_history__deleted_flag__still_listed_under_its_key(
    admin_client: Any, api_flag: Any
) -> None:
    flag = api_flag()
    services.delete_flag(flag, actor=None, reason="cleanup")
    entries = _history(admin_client, "flag=checkout.new-flow")
    assert entries[0]["action"] == "deleted"
    assert any(e["reason"] == "cleanup" and e["model"] == "flag" for e in entries)


def test_history__bad_date__400(admin_client: Any, envs: Any) -> None:
    response = admin_client.get("/api/v1/history/?since=yesterday")
    assert response.status_code == 400
    assert "since" in response.json()


def test_history__user_seeing_only_segments__gets_only_segment_history(
    admin_client: Any, api_flag: Any, make_user: Any, client_for: Any
) -> None:
    api_flag()
    services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    client = client_for(make_user("view_segment"))
    entries = client.get("/api/v1/history/").json()["results"]
    assert {e["model"] for e in entries} == {"segment"}


# --- SDK keys ----------------------------------------------------------------------------


def test_sdk_key__create__token_shown_once_stored_hashed_and_works(
    admin_client: Any, envs: Any
) -> None:
    response = admin_client.post(
        "/api/v1/sdk-keys/",
        {"environment": "staging", "name": "web"},
        format="json",
        **write_headers(),
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    token = data["token"]
    key = SdkKey.objects.get(pk=data["id"])
    assert key.secret_hash == hash_token(token)
    assert token not in str(SdkKey.objects.values_list())
    assert authenticate_token(token).environment_key == "staging"
    listed = admin_client.get("/api/v1/sdk-keys/").json()["results"]
    assert listed[0]["public_id"] == key.public_id
    assert "token" not in listed[0]
    assert token not in admin_client.get(f"/api/v1/sdk-keys/{key.pk}/").content.decode()


def test_sdk_key__revoke__refused_by_sdk_api_afterwards(admin_client: Any, envs: Any) -> None:
    from flagapp.sdk.keys import AuthFailure

    data = admin_client.post(
        "/api/v1/sdk-keys/", {"environment": "staging"}, format="json", **write_headers()
    ).json()
    revoked = admin_client.post(f"/api/v1/sdk-keys/{data['id']}/revoke/", **write_headers())
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    with pytest.raises(AuthFailure):
        authenticate_token(data["token"])
    assert admin_client.get("/api/v1/sdk-keys/?active=true").json()["results"] == []


def test_sdk_key__create_and_revoke__who_why_when_and_scope_in_list_and_detail(
    admin_client: Any, envs: Any
) -> None:
    created = admin_client.post(
        "/api/v1/sdk-keys/",
        {"environment": "staging", "name": "storefront", "scope": "client"},
        format="json",
        **write_headers(reason="storefront goes live"),
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["token"] and data["scope"] == "client"
    assert (data["created_by"], data["created_reason"]) == ("admin", "storefront goes live")
    assert data["revoked_by"] is None and data["revoke_reason"] == "" and data["active"]
    revoked = admin_client.post(
        f"/api/v1/sdk-keys/{data['id']}/revoke/", **write_headers(reason="token leaked")
    ).json()
    detail = admin_client.get(f"/api/v1/sdk-keys/{data['id']}/").json()
    listed = admin_client.get("/api/v1/sdk-keys/").json()["results"][0]
    for seen in (revoked, detail, listed):
        assert seen["created_reason"] == "storefront goes live", seen
        assert (seen["revoked_by"], seen["revoke_reason"]) == ("admin", "token leaked")
        assert seen["revoked_at"] and seen["scope"] == "client" and not seen["active"]
        assert "token" not in seen and "secret_hash" not in seen
    assert data["token"] not in str(detail) + str(listed)


def test_sdk_key__unknown_environment__400(admin_client: Any, envs: Any) -> None:
    response = admin_client.post(
        "/api/v1/sdk-keys/", {"environment": "mars"}, format="json", **write_headers()
    )
    assert response.status_code == 400
    assert "environment" in response.json()


def test_sdk_key__no_reason__400_and_no_key(admin_client: Any, envs: Any) -> None:
    response = admin_client.post("/api/v1/sdk-keys/", {"environment": "staging"}, format="json")
    assert response.status_code == 400
    assert not SdkKey.objects.exists()


def test_history__pages__disjoint_ordered_and_bounded_queries(
    admin_client: Any, api_flag: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(4):
        api_flag(f"team.flag-{i}")
    services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    first = admin_client.get("/api/v1/history/?page_size=10").json()
    total = first["count"]
    assert total > 20  # environments, flags, variants, states, the segment
    seen: list[str] = []
    url: str | None = "/api/v1/history/?page_size=10"
    while url:
        with django_assert_max_num_queries(12):
            page = admin_client.get(url).json()
        seen.extend(e["id"] for e in page["results"])
        url = page["next"]
    assert len(seen) == len(set(seen)) == total
    everything = admin_client.get("/api/v1/history/?page_size=500").json()["results"]
    assert [e["id"] for e in everything] == seen
    dates = [e["date"] for e in everything]
    assert dates == sorted(dates, reverse=True)
