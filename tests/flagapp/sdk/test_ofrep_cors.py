"""CORS for OFREP (issue 15, part 3): a page on another origin may call OFREP when its origin
is configured (``FLAGAPP["OFREP_CORS_ORIGINS"]``); the preflight answers 204 before any key
check; allowed answers expose the ETag; never Access-Control-Allow-Credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from flagapp.conf import settings as flagapp_settings
from flagapp.sdk.ofrep import CORS_ALLOW_HEADERS
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer

pytestmark = pytest.mark.django_db

PAGE = "http://127.0.0.1:8123"
BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture
def origins(request: pytest.FixtureRequest) -> Iterator[None]:
    from django.conf import settings

    allowed = getattr(request, "param", [PAGE, "https://app.example.com"])
    with override_settings(FLAGAPP={**settings.FLAGAPP, "OFREP_CORS_ORIGINS": allowed}):
        flagapp_settings.reload()
        yield
    flagapp_settings.reload()


def _preflight(path: str, origin: str, method: str = "POST") -> Any:
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,if-none-match",
    )


@pytest.mark.parametrize("path", [BULK, f"{BULK}/demo.bool", "/ofrep/v1/configuration"])
def test_ofrep_preflight__allowed_origin__204_with_allow_headers(origins: None, path: str) -> None:
    response = _preflight(path, PAGE)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == PAGE
    assert "If-None-Match" in response["Access-Control-Allow-Headers"]
    assert response["Access-Control-Allow-Headers"] == CORS_ALLOW_HEADERS
    assert "OPTIONS" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Max-Age"] == "600"
    assert "Origin" in response["Vary"]
    assert not response.has_header("Access-Control-Allow-Credentials")


def test_ofrep_preflight__other_origin__403_naming_the_setting(origins: None) -> None:
    response = _preflight(BULK, "https://evil.example")
    assert response.status_code == 403
    assert not response.has_header("Access-Control-Allow-Origin")
    assert "OFREP_CORS_ORIGINS" in response.json()["errorDetails"]


def test_ofrep_preflight__nothing_configured__403(sdk_token: str) -> None:
    assert _preflight(BULK, PAGE).status_code == 403


def test_ofrep_bulk__allowed_origin__allow_origin_and_etag_exposed(
    origins: None, sdk_token: str, install_flags: Any
) -> None:
    install_flags(ALL_KINDS, version=3)
    response = Client().post(
        BULK, json.dumps({"context": {"targetingKey": "u"}}), "application/json",
        HTTP_ORIGIN=PAGE, **bearer(sdk_token),
    )  # fmt: skip
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == PAGE
    assert "ETag" in response["Access-Control-Expose-Headers"].split(", ")
    assert "Origin" in response["Vary"]
    assert not response.has_header("Access-Control-Allow-Credentials")


def test_ofrep_bulk__refused_key__still_readable_by_the_page(origins: None, db: Any) -> None:
    response = Client().post(
        BULK, "{}", "application/json", HTTP_ORIGIN=PAGE, HTTP_AUTHORIZATION="Bearer nope"
    )
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == PAGE


def test_ofrep_bulk__other_origin__no_cors_headers(
    origins: None, sdk_token: str, install_flags: Any
) -> None:
    install_flags(ALL_KINDS, version=3)
    response = Client().post(
        BULK, "{}", "application/json", HTTP_ORIGIN="https://evil.example", **bearer(sdk_token)
    )
    assert not response.has_header("Access-Control-Allow-Origin")


@pytest.mark.parametrize("origins", [["*"]], indirect=True)
def test_ofrep_preflight__wildcard__star_without_credentials(origins: None) -> None:
    response = _preflight(BULK, "https://anyone.example")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert not response.has_header("Access-Control-Allow-Credentials")
    assert "Origin" not in response.get("Vary", "")


def test_ofrep_options__no_preflight_headers__204_allow(db: Any) -> None:
    response = Client().options(BULK)
    assert response.status_code == 204
    assert response["Allow"] == "POST, OPTIONS"
