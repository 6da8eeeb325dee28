"""Flags through the management API: create, read, change, variants, archive, delete."""

from __future__ import annotations

from typing import Any

import pytest

from flagapp.models import Flag, FlagKeyTombstone
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import release_expiry, write_headers

pytestmark = pytest.mark.django_db

URL = "/api/v1/flags/"


def _create_body(**extra: Any) -> dict[str, Any]:
    body = {
        "key": "checkout.new-flow",
        "name": "New checkout",
        "owner": "payments",
        "expires_on": release_expiry(),
    }
    body.update(extra)
    return body


def test_create_flag__valid_body__201_with_variants_states_and_etag(
    admin_client: Any, envs: Any, owner_group: Any
) -> None:
    response = admin_client.post(URL, _create_body(), format="json", **write_headers())
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["key"] == "checkout.new-flow"
    assert data["variants"] == [
        {"key": "on", "value": True, "description": ""},
        {"key": "off", "value": False, "description": ""},
    ]
    assert [s["environment"] for s in data["states"]] == ["development", "staging", "production"]
    assert all(s["enabled"] is False for s in data["states"])
    assert response["ETag"] == f'"{data["version"]}"'
    assert response["Location"].endswith("/api/v1/flags/checkout.new-flow/")
    flag = Flag.objects.get(key="checkout.new-flow")
    assert flag.history.first().history_change_reason == "api test"


def test_create_flag__no_reason__400_on_reason_and_nothing_written(
    admin_client: Any, envs: Any, owner_group: Any
) -> None:
    response = admin_client.post(URL, _create_body(), format="json")
    assert response.status_code == 400
    assert "reason" in response.json()
    assert not Flag.objects.exists()


def test_create_flag__reason_in_body__201(admin_client: Any, envs: Any, owner_group: Any) -> None:
    response = admin_client.post(URL, _create_body(reason="from body"), format="json")
    assert response.status_code == 201
    assert Flag.objects.get().history.first().history_change_reason == "from body"


def test_create_flag__bad_key_and_missing_expiry__400_field_errors(
    admin_client: Any, envs: Any, owner_group: Any
) -> None:
    body = _create_body(key="Not A Key")
    del body["expires_on"]
    response = admin_client.post(URL, body, format="json", **write_headers())
    assert response.status_code == 400
    assert "key" in response.json()
    assert not Flag.objects.exists()


def test_create_flag__string_flag_with_wrong_variant_type__400_on_variants(
    admin_client: Any, envs: Any, owner_group: Any
) -> None:
    body = _create_body(kind="string", variants=[{"key": "a", "value": 3}])
    response = admin_client.post(URL, body, format="json", **write_headers())
    assert response.status_code == 400, response.content
    assert "variants" in response.json()


def test_create_flag__key_of_deleted_flag__400_naming_deletion(
    admin_client: Any, api_flag: Any
) -> None:
    flag = api_flag()
    version = admin_client.get(f"{URL}{flag.key}/").json()["version"]
    deleted = admin_client.delete(f"{URL}{flag.key}/", **write_headers(version))
    assert deleted.status_code == 204
    assert FlagKeyTombstone.objects.filter(key=flag.key).exists()
    again = admin_client.post(URL, _create_body(), format="json", **write_headers())
    assert again.status_code == 400
    assert "deleted" in " ".join(again.json()["key"])


def test_retrieve_flag__existing__etag_matches_version(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    response = admin_client.get(f"{URL}checkout.new-flow/")
    assert response.status_code == 200
    assert response["ETag"] == f'"{response.json()["version"]}"'


def test_retrieve_flag__unknown__404(admin_client: Any, envs: Any) -> None:
    assert admin_client.get(f"{URL}no.such-flag/").status_code == 404


def test_patch_flag__current_version__200_and_version_moves(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    before = admin_client.get(f"{URL}checkout.new-flow/").json()
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"name": "Renamed", "tags": ["checkout"]},
        format="json",
        **write_headers(before["version"], reason="rename"),
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    assert response.json()["version"] > before["version"]
    assert Flag.objects.get().history.first().history_change_reason == "rename"


def test_patch_flag__stale_version__409_with_current_and_nothing_written(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    current = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"name": "Lost update?"},
        format="json",
        **write_headers(current - 1),
    )
    assert response.status_code == 409
    assert response.json()["current_version"] == current
    assert response["ETag"] == f'"{current}"'
    assert Flag.objects.get().name == "checkout.new-flow"


def test_patch_flag__version_in_body__accepted(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    current = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"name": "Body version", "version": current, "reason": "why"},
        format="json",
    )
    assert response.status_code == 200, response.content


def test_patch_flag__no_version__428_and_nothing_written(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    response = admin_client.patch(
        f"{URL}checkout.new-flow/", {"name": "x"}, format="json", **write_headers()
    )
    assert response.status_code == 428
    assert Flag.objects.get().name == "checkout.new-flow"


def test_patch_flag__if_match_and_body_disagree__400(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    current = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"name": "x", "version": current + 5},
        format="json",
        **write_headers(current),
    )
    assert response.status_code == 400
    assert "version" in response.json()


def test_patch_flag__change_key__400_key_immutable(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    current = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"key": "checkout.other"},
        format="json",
        **write_headers(current),
    )
    assert response.status_code == 400
    assert "key" in response.json()


def test_patch_flag__variants__replaced_and_state_versions_move(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag(
        "checkout.colour",
        kind="string",
        variants={"red": "red", "blue": "blue"},
        flag_type="ops",
        expires_on=None,
    )
    before = admin_client.get(f"{URL}checkout.colour/").json()
    variants = [
        {"key": "red", "value": "#f00"},
        {"key": "blue", "value": "blue"},
        {"key": "green", "value": "green", "description": "new"},
    ]
    response = admin_client.patch(
        f"{URL}checkout.colour/",
        {"variants": variants},
        format="json",
        **write_headers(before["version"]),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert [v["key"] for v in data["variants"]] == ["red", "blue", "green"]
    assert data["variants"][0]["value"] == "#f00"
    assert data["version"] > before["version"]
    assert [s["version"] for s in data["states"]] > [s["version"] for s in before["states"]]


def test_patch_flag__archive_then_unarchive__archived_toggles(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    v = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    archived = admin_client.patch(
        f"{URL}checkout.new-flow/", {"archived": True}, format="json", **write_headers(v)
    )
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    restored = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"archived": False},
        format="json",
        **write_headers(archived.json()["version"]),
    )
    assert restored.status_code == 200
    assert restored.json()["archived"] is False


def test_delete_flag__stale_version__409_and_flag_kept(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    v = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    response = admin_client.delete(f"{URL}checkout.new-flow/", **write_headers(v + 1))
    assert response.status_code == 409
    assert Flag.objects.filter(key="checkout.new-flow").exists()


def test_list_flags__filters_and_search__only_matching(admin_client: Any, api_flag: Any) -> None:
    api_flag("checkout.new-flow", tags=["web"])
    api_flag("search.ranking-v2", flag_type="experiment", tags=["ml"])
    api_flag("ops.read-only", flag_type="ops", expires_on=None)

    def keys(query: str) -> list[str]:
        response = admin_client.get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return [f["key"] for f in response.json()["results"]]

    assert keys("") == ["checkout.new-flow", "ops.read-only", "search.ranking-v2"]
    assert keys("flag_type=experiment") == ["search.ranking-v2"]
    assert keys("tag=ml") == ["search.ranking-v2"]
    assert keys("search=read") == ["ops.read-only"]
    assert keys("owner=payments&ordering=-key")[0] == "search.ranking-v2"
    assert keys("enabled_in=production") == []
    assert keys("expired=false") == ["checkout.new-flow", "ops.read-only", "search.ranking-v2"]


def test_list_flags__page_size__paginated_with_count(admin_client: Any, api_flag: Any) -> None:
    for i in range(3):
        api_flag(f"team.flag-{i}")
    first = admin_client.get(f"{URL}?page_size=2").json()
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"] is not None
    second = admin_client.get(first["next"]).json()
    assert [f["key"] for f in second["results"]] == ["team.flag-2"]


def test_list_flags__many_flags__bounded_queries(
    admin_client: Any, api_flag: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(10):
        api_flag(f"team.flag-{i}")
    with django_assert_max_num_queries(12):
        response = admin_client.get(URL)
    assert len(response.json()["results"]) == 10


def test_patch_flag__utf8_reason_header__recorded_as_sent(admin_client: Any, api_flag: Any) -> None:
    api_flag()
    current = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    reason = "Größe prüfen: ticket №7"
    response = admin_client.patch(
        f"{URL}checkout.new-flow/",
        {"name": "Renamed"},
        format="json",
        HTTP_IF_MATCH=f'"{current}"',
        HTTP_X_CHANGE_REASON=reason.encode("utf-8").decode("latin-1"),
    )
    assert response.status_code == 200, response.content
    assert Flag.objects.get().history.first().history_change_reason == reason


@pytest.mark.parametrize("error", ["OperationalError", "InterfaceError"])
def test_api__database_unreachable__503_with_retry_after_not_500(
    admin_client: Any,
    api_flag: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: str,
) -> None:
    """A dead pooled connection after a PostgreSQL restart (tests/faults), or the database
    down: not the request's fault and not a bug, so 503 + Retry-After (clients retry it),
    never 500; the cause is logged for the operator."""
    import django.db
    from django.db.models import QuerySet

    api_flag()
    exc = getattr(django.db, error)

    def unreachable(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise exc("connection is lost")

    monkeypatch.setattr(QuerySet, "_fetch_all", unreachable)
    with caplog.at_level("WARNING", logger="flagapp.api.errors"):
        response = admin_client.get(f"{URL}checkout.new-flow/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database" in response.json()["detail"]
    assert "answered 503 (connection is lost)" in caplog.text


def test_patch_flag__retry_of_committed_write_with_its_stale_version__200_nothing_written(
    admin_client: Any, api_flag: Any
) -> None:
    """Issue 10: a client whose write committed always learns that it committed. The first
    answer is lost (a dropped connection after COMMIT, a 503); the retry sends the same body
    with the version it had, now stale. It asks for exactly what is stored, so it is told
    200 with the current version (as flag states already were), not 409 for its own change;
    a stale write asking for anything else is still refused."""
    api_flag()
    before = admin_client.get(f"{URL}checkout.new-flow/").json()["version"]
    body = {"name": "Renamed", "description": "new copy"}
    first = admin_client.patch(
        f"{URL}checkout.new-flow/", body, format="json", **write_headers(before)
    )
    assert first.status_code == 200, first.content
    history = Flag.objects.get().history.count()
    retry = admin_client.patch(
        f"{URL}checkout.new-flow/", body, format="json", **write_headers(before)
    )
    assert retry.status_code == 200, retry.content
    assert retry.json()["version"] == first.json()["version"]
    assert retry["ETag"] == first["ETag"]
    assert Flag.objects.get().history.count() == history  # nothing written
    other = admin_client.patch(
        f"{URL}checkout.new-flow/", {"name": "Other"}, format="json", **write_headers(before)
    )
    assert other.status_code == 409
    assert Flag.objects.get().name == "Renamed"
