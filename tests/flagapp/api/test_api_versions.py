"""The API's ETag / If-Match is the resource's version column, checked by the services'
one rule (issue 12 part 1): the same numbers the admin's hidden version field and
governance's base version carry."""

from __future__ import annotations

from typing import Any

import pytest

from flagapp import services
from flagapp.models import Environment, Flag, Segment
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db


def test_flag_etag__fresh_flag__is_its_version_column(admin_client: Any, api_flag: Any) -> None:
    flag = api_flag()
    response = admin_client.get("/api/v1/flags/checkout.new-flow/")
    assert response["ETag"] == f'"{flag.version}"' == '"1"'
    assert response.json()["version"] == 1


def test_segment_and_environment_etag__after_a_service_write__is_the_new_version(
    admin_client: Any, envs: dict[str, Environment]
) -> None:
    segment = services.create_segment(key="beta", name="Beta", actor=None, reason="r")
    services.update_segment(segment, name="Beta 2", actor=None, reason="r")
    services.update_environment(envs["staging"], name="Stage", actor=None, reason="r")
    assert admin_client.get("/api/v1/segments/beta/")["ETag"] == '"2"'
    assert admin_client.get("/api/v1/environments/staging/")["ETag"] == '"2"'
    assert Segment.objects.get(key="beta").version == 2


def test_flag_patch__variants_change__one_version_move_and_new_etag(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    body = {
        "name": "Renamed",
        "variants": [
            {"key": "on", "value": True},
            {"key": "off", "value": False},
            {"key": "also", "value": True},
        ],
    }
    response = admin_client.patch(
        "/api/v1/flags/checkout.new-flow/", body, format="json", **write_headers(1)
    )
    assert response.status_code == 200, response.content
    version = Flag.objects.get(key="checkout.new-flow").version
    assert response["ETag"] == f'"{version}"'
    assert version > 1


def test_flag_patch__stale_retry_of_committed_variants_change__200_not_409(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    body = {
        "variants": [
            {"key": "on", "value": True},
            {"key": "off", "value": False},
            {"key": "also", "value": True},
        ]
    }
    url = "/api/v1/flags/checkout.new-flow/"
    first = admin_client.patch(url, body, format="json", **write_headers(1))
    assert first.status_code == 200
    retry = admin_client.patch(url, body, format="json", **write_headers(1))
    assert retry.status_code == 200, retry.content
    assert retry["ETag"] == first["ETag"]


def test_flag_patch__stale_version_changing_something__409_naming_current(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    url = "/api/v1/flags/checkout.new-flow/"
    assert (
        admin_client.patch(url, {"name": "A"}, format="json", **write_headers(1)).status_code == 200
    )
    response = admin_client.patch(url, {"archived": True}, format="json", **write_headers(1))
    assert response.status_code == 409
    assert response.json()["current_version"] == 2
    assert not Flag.objects.get(key="checkout.new-flow").archived
