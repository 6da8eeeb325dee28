"""The published OFREP client (openfeature-provider-ofrep) against a real HTTP server.

live_server is a real threaded HTTP server on 127.0.0.1; the client goes through the real
openfeature-sdk. Rulesets are installed in the server's (same-process) evaluation cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from flagapp.sdk import keys
from flagapp.services import sdk_keys
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS

pytestmark = pytest.mark.django_db(transaction=True)

CTX = EvaluationContext(targeting_key="user-1", attributes={"plan": "pro"})


def _client(base_url: str, headers: dict[str, str]) -> OpenFeatureClient:
    domain = f"ofrep-{uuid.uuid4().hex}"
    api.set_provider(OFREPProvider(base_url, headers_factory=lambda: dict(headers)), domain)
    return api.get_client(domain)


@pytest.fixture
def token(environments: Any, install_flags: Callable[..., Any]) -> str:
    install_flags(ALL_KINDS, version=3)
    _, secret = sdk_keys.create_sdk_key(
        "production", name="ofrep-client", actor=None, reason="tests"
    )
    return secret


@pytest.fixture
def client(live_server: Any, token: str) -> Iterator[OpenFeatureClient]:
    yield _client(live_server.url, {"Authorization": f"Bearer {token}"})
    api.clear_providers()


def test_ofrep_client__every_kind__flag_values(client: OpenFeatureClient) -> None:
    assert client.get_boolean_details("demo.bool", False, CTX).value is True
    assert client.get_string_details("demo.string", "x", CTX).value == "beta"
    assert client.get_integer_details("demo.int", 0, CTX).value == 100
    floating = client.get_float_details("demo.float", 9.5, CTX)
    assert floating.value == 1.0 and floating.error_code is None
    assert client.get_object_details("demo.object", {}, CTX).value == {"limit": 3, "tags": ["x"]}
    assert client.get_integer_details("demo.zero", 7, CTX).value == 0
    details = client.get_boolean_details("demo.pro", False, CTX)
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH, "on")
    assert details.flag_metadata["owner"] == "tests"


def test_ofrep_client__missing_flag__default_with_flag_not_found(
    client: OpenFeatureClient,
) -> None:
    details = client.get_boolean_details("no.such-flag", True, CTX)
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


def test_ofrep_client__disabled_flag__callers_default_reason_disabled(
    client: OpenFeatureClient,
) -> None:
    details = client.get_boolean_details("demo.off", True, CTX)
    assert (details.value, details.reason, details.error_code) == (True, Reason.DISABLED, None)
    gated = client.get_boolean_details("demo.gated", True, CTX)
    assert (gated.value, gated.reason) == (True, Reason.DISABLED)


def test_ofrep_client__wrong_type__default_with_type_mismatch(client: OpenFeatureClient) -> None:
    details = client.get_string_details("demo.bool", "fallback", CTX)
    assert details.value == "fallback"
    assert details.error_code == ErrorCode.TYPE_MISMATCH


def test_ofrep_client__no_targeting_key__context_accepted(client: OpenFeatureClient) -> None:
    ctx = EvaluationContext(attributes={"plan": "pro"})
    assert client.get_boolean_details("demo.pro", False, ctx).value is True


def test_ofrep_client__x_api_key_header__accepted(live_server: Any, token: str) -> None:
    client = _client(live_server.url, {"X-API-Key": token})
    try:
        assert client.get_string_value("demo.string", "x", CTX) == "beta"
    finally:
        api.clear_providers()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fa_production_nope"}])
def test_ofrep_client__no_or_bad_key__refused_default_general_error(
    live_server: Any, token: str, headers: dict[str, str]
) -> None:
    client = _client(live_server.url, headers)
    try:
        details = client.get_boolean_details("demo.bool", False, CTX)
    finally:
        api.clear_providers()
    assert details.value is False
    assert details.error_code == ErrorCode.GENERAL
    assert details.error_message == "unauthorized"


def test_ofrep_client__revoked_key__refused(live_server: Any, token: str) -> None:
    client = _client(live_server.url, {"Authorization": f"Bearer {token}"})
    try:
        assert client.get_boolean_value("demo.bool", False, CTX) is True
        sdk_keys.revoke_sdk_key(keys.public_id_of(token), actor=None, reason="tests")
        details = client.get_boolean_details("demo.bool", False, CTX)
    finally:
        api.clear_providers()
    assert (details.value, details.error_code) == (False, ErrorCode.GENERAL)
