"""OFREP single and bulk evaluation through Django's test client (shapes and status codes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer
from tests.interop.ofrep_openapi import BULK as BULK_SHAPES
from tests.interop.ofrep_openapi import SINGLE as SINGLE_SHAPES
from tests.interop.ofrep_openapi import assert_valid

pytestmark = pytest.mark.django_db

BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture
def ofrep(sdk_token: str, install_flags: Callable[..., Any]) -> Callable[..., Any]:
    install_flags(ALL_KINDS, version=4)
    client = Client()

    def post(
        key: str | None, context: Any = None, *, raw: bytes | None = None, **extra: Any
    ) -> Any:
        path = BULK if key is None else f"{BULK}/{key}"
        body = (
            raw if raw is not None else json.dumps({} if context is None else {"context": context})
        )
        response = client.post(
            path, data=body, content_type="application/json", **bearer(sdk_token), **extra
        )
        # Every shape these tests produce is also checked against OFREP's openapi.yaml.
        if response.status_code in (BULK_SHAPES if key is None else SINGLE_SHAPES):
            assert_valid(response.json(), response.status_code, bulk=key is None)
        return response

    return post


@pytest.mark.parametrize(
    ("key", "value", "variant", "reason"),
    [
        ("demo.bool", True, "on", "STATIC"),
        ("demo.string", "beta", "b", "STATIC"),
        ("demo.int", 100, "big", "STATIC"),
        ("demo.object", {"limit": 3, "tags": ["x"]}, "cfg", "STATIC"),
        ("demo.zero", 0, "zero", "STATIC"),
        ("demo.pro", True, "on", "TARGETING_MATCH"),
    ],
)
def test_evaluate_flag__each_kind__value_variant_reason_metadata(
    ofrep: Callable[..., Any], key: str, value: Any, variant: str, reason: str
) -> None:
    response = ofrep(key, {"targetingKey": "u1", "plan": "pro"})
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == key
    assert body["value"] == value and type(body["value"]) is type(value)
    assert (body["variant"], body["reason"]) == (variant, reason)
    assert body["metadata"]["owner"] == "tests"
    assert all(isinstance(v, bool | int | float | str) for v in body["metadata"].values())


def test_evaluate_flag__float_flag_with_integral_value__serialised_as_float(
    ofrep: Callable[..., Any],
) -> None:
    response = ofrep("demo.float")
    assert b'"value":1.0' in response.content
    assert isinstance(response.json()["value"], float)


def test_evaluate_flag__disabled__no_value_reason_disabled_variant_present(
    ofrep: Callable[..., Any],
) -> None:
    body = ofrep("demo.off", {"targetingKey": "u1"}).json()
    assert "value" not in body
    assert body["reason"] == "DISABLED"
    assert "variant" in body and body["variant"] is None


def test_evaluate_flag__prerequisite_failed__standard_reason_custom_one_in_metadata(
    ofrep: Callable[..., Any],
) -> None:
    body = ofrep("demo.gated", {"targetingKey": "u1"}).json()
    assert "value" not in body
    assert body["reason"] == "DISABLED"
    assert body["metadata"]["flagappReason"] == "PREREQUISITE_FAILED"


def test_evaluate_flag__no_match_null_fallthrough__default_without_value(
    ofrep: Callable[..., Any],
) -> None:
    body = ofrep("demo.nodefault", {"plan": "y"}).json()
    assert "value" not in body
    assert body["reason"] == "UNKNOWN"  # DEFAULT is outside OFREP's success-reason enum
    assert body["metadata"]["flagappReason"] == "DEFAULT"


def test_evaluate_flag__context_without_targeting_key__accepted(
    ofrep: Callable[..., Any],
) -> None:
    assert ofrep("demo.pro", {"plan": "pro"}).json()["value"] is True
    assert ofrep("demo.bool", None).json()["value"] is True
    assert ofrep("demo.bool", raw=b"").status_code == 200


def test_evaluate_flag__rollout_without_targeting_key__400_targeting_key_missing(
    ofrep: Callable[..., Any],
) -> None:
    response = ofrep("demo.split", {"plan": "pro"})
    assert response.status_code == 400
    body = response.json()
    assert body["key"] == "demo.split"
    assert body["errorCode"] == "TARGETING_KEY_MISSING"
    assert body["errorDetails"]


def test_evaluate_flag__rollout_with_targeting_key__split(ofrep: Callable[..., Any]) -> None:
    body = ofrep("demo.split", {"targetingKey": "user-7"}).json()
    assert body["reason"] == "SPLIT"
    assert body["variant"] in ("on", "off")


def test_evaluate_flag__unknown_flag__404_flag_not_found_with_details(
    ofrep: Callable[..., Any],
) -> None:
    response = ofrep("no.such-flag")
    assert response.status_code == 404
    assert response.json()["key"] == "no.such-flag"
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["errorDetails"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"{nope", "PARSE_ERROR"), (b"[1]", "PARSE_ERROR"), (b'{"context": [1]}', "INVALID_CONTEXT")],
)
def test_evaluate_flag__bad_body__400_with_details(
    ofrep: Callable[..., Any], raw: bytes, code: str
) -> None:
    response = ofrep("demo.bool", raw=raw)
    assert response.status_code == 400
    assert response.json() == {
        "key": "demo.bool",
        "errorCode": code,
        "errorDetails": response.json()["errorDetails"],
    }
    assert response.json()["errorDetails"]


def test_evaluate_flag__get__405(sdk_token: str, install_flags: Callable[..., Any]) -> None:
    install_flags(ALL_KINDS)
    assert Client().get(f"{BULK}/demo.bool", **bearer(sdk_token)).status_code == 405


def test_evaluate_flag__warm__no_database_query(
    ofrep: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    ofrep("demo.bool")
    with django_assert_num_queries(0):
        for key in ALL_KINDS:
            ofrep(key, {"targetingKey": "u1"})


def test_evaluate_bulk__context__every_flag_with_etag(ofrep: Callable[..., Any]) -> None:
    response = ofrep(None, {"targetingKey": "u1", "plan": "pro"})
    assert response.status_code == 200
    flags = {f["key"]: f for f in response.json()["flags"]}
    assert set(flags) == set(ALL_KINDS)
    assert flags["demo.float"]["value"] == 1.0 and isinstance(flags["demo.float"]["value"], float)
    assert "value" not in flags["demo.off"]
    assert flags["demo.split"]["reason"] == "SPLIT"
    assert response["ETag"].startswith('"')


def test_evaluate_bulk__failures__carried_inline(ofrep: Callable[..., Any]) -> None:
    flags = {f["key"]: f for f in ofrep(None, {"plan": "free"}).json()["flags"]}
    assert flags["demo.split"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert flags["demo.split"]["errorDetails"]


def test_evaluate_bulk__failure_of_a_known_flag__carries_the_flags_metadata(
    ofrep: Callable[..., Any],
) -> None:
    """evaluationFailure allows ``metadata``; the web provider reports it as the flag's
    metadata, as FlagappProvider does for the same failure (docs/interop.md)."""
    flags = {f["key"]: f for f in ofrep(None, {"plan": "free"}).json()["flags"]}
    assert flags["demo.split"]["metadata"]["version"] == 3
    assert "snapshotVersion" not in flags["demo.split"]["metadata"]


def test_evaluate_bulk__if_none_match_same_context__304(ofrep: Callable[..., Any]) -> None:
    first = ofrep(None, {"targetingKey": "u1"})
    again = ofrep(None, {"targetingKey": "u1"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]
    other = ofrep(None, {"targetingKey": "u2"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200


def test_evaluate_bulk__new_snapshot__etag_changes(
    ofrep: Callable[..., Any], install_flags: Callable[..., Any]
) -> None:
    first = ofrep(None, {"targetingKey": "u1"})
    install_flags(ALL_KINDS, version=5)
    again = ofrep(None, {"targetingKey": "u1"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]


def test_evaluate_bulk__bad_body__400_with_error_code(ofrep: Callable[..., Any]) -> None:
    response = ofrep(None, raw=b"{oops")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


def test_configuration__key__capabilities_with_etag(
    sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    client = Client()
    response = client.get("/ofrep/v1/configuration", **bearer(sdk_token))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "flagapp"
    assert body["capabilities"]["cacheInvalidation"]["polling"]["enabled"] is True
    again = client.get(
        "/ofrep/v1/configuration", HTTP_IF_NONE_MATCH=response["ETag"], **bearer(sdk_token)
    )
    assert again.status_code == 304
    assert client.get("/ofrep/v1/configuration").status_code == 401
