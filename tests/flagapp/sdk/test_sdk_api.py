"""GET /sdk/v1/ruleset and POST /sdk/v1/events through Django's test client."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from flagapp import sampling
from flagapp.models import ContextSample, FlagEvaluationStat, SdkEvent
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from openfeature_provider.engine import parse_ruleset
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer, flag_doc

pytestmark = pytest.mark.django_db

RULESET = "/sdk/v1/ruleset"
EVENTS = "/sdk/v1/events"


@pytest.fixture
def client() -> Client:
    return Client()


def test_ruleset__bearer_key__serves_its_environment_snapshot(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS, version=7)
    install_flags({"stage.only": flag_doc()}, environment="staging", version=2)
    response = client.get(RULESET, **bearer(sdk_token))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    doc = json.loads(response.content)
    ruleset = parse_ruleset(doc)
    assert ruleset.version == 7
    assert set(ruleset.flags) == set(ALL_KINDS)
    assert response["ETag"] == '"sha256:test-production-7"'


def test_ruleset__x_api_key_header__accepted(
    client: Client, staging_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags({"stage.only": flag_doc()}, environment="staging", version=2)
    response = client.get(RULESET, HTTP_X_API_KEY=staging_token)
    assert response.status_code == 200
    assert set(json.loads(response.content)["flags"]) == {"stage.only"}


@pytest.mark.parametrize(
    "if_none_match",
    [
        '"sha256:test-production-7"',
        'W/"sha256:test-production-7"',
        '"x", "sha256:test-production-7"',
    ],
)
def test_ruleset__if_none_match_current__304_with_etag(
    client: Client, sdk_token: str, install_flags: Callable[..., Any], if_none_match: str
) -> None:
    install_flags(ALL_KINDS, version=7)
    response = client.get(RULESET, HTTP_IF_NONE_MATCH=if_none_match, **bearer(sdk_token))
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == '"sha256:test-production-7"'


def test_ruleset__if_none_match_older__200_new_version(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS, version=8)
    response = client.get(
        RULESET, HTTP_IF_NONE_MATCH='"sha256:test-production-7"', **bearer(sdk_token)
    )
    assert response.status_code == 200
    assert json.loads(response.content)["version"] == 8


def test_ruleset__accept_gzip__gzipped_body(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS, version=7)
    plain = client.get(RULESET, **bearer(sdk_token)).content
    response = client.get(RULESET, HTTP_ACCEPT_ENCODING="gzip, br", **bearer(sdk_token))
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(response.content) == plain


def test_ruleset__warm__no_database_query(
    client: Client,
    sdk_token: str,
    install_flags: Callable[..., Any],
    django_assert_num_queries: Any,
) -> None:
    install_flags(ALL_KINDS, version=7)
    client.get(RULESET, **bearer(sdk_token))
    with django_assert_num_queries(0):
        assert client.get(RULESET, **bearer(sdk_token)).status_code == 200


def test_ruleset__no_snapshot_yet__503_retry_after(client: Client, sdk_token: str) -> None:
    response = client.get(RULESET, **bearer(sdk_token))
    assert response.status_code == 503
    assert response["Retry-After"]


# --- the authorization matrix ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", [RULESET, EVENTS, "/ofrep/v1/evaluate/flags/demo.bool", "/ofrep/v1/evaluate/flags"]
)
def test_sdk_endpoints__no_key__401(
    client: Client, environments: Any, install_flags: Callable[..., Any], path: str
) -> None:
    install_flags(ALL_KINDS)
    method = client.get if path == RULESET else client.post
    response = method(path, content_type="application/json")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


@pytest.mark.parametrize(
    "path", [RULESET, EVENTS, "/ofrep/v1/evaluate/flags/demo.bool", "/ofrep/v1/evaluate/flags"]
)
def test_sdk_endpoints__revoked_key__401(
    client: Client, sdk_token: str, install_flags: Callable[..., Any], path: str
) -> None:
    install_flags(ALL_KINDS)
    method = client.get if path == RULESET else client.post
    assert method(
        path,
        data={"events": []} if path == EVENTS else {},
        content_type="application/json",
        **bearer(sdk_token),
    ).status_code in (200, 202)
    sdk_keys.revoke_sdk_key(keys.public_id_of(sdk_token), actor=None, reason="tests")
    response = method(path, content_type="application/json", **bearer(sdk_token))
    assert response.status_code == 401


@pytest.mark.parametrize("path", [RULESET, "/ofrep/v1/evaluate/flags/demo.bool"])
def test_sdk_endpoints__another_environments_key__403(
    client: Client, staging_token: str, install_flags: Callable[..., Any], path: str
) -> None:
    install_flags(ALL_KINDS)
    install_flags({"stage.only": flag_doc()}, environment="staging")
    method = client.get if path == RULESET else client.post
    response = method(
        f"{path}?environment=production", content_type="application/json", **bearer(staging_token)
    )
    assert response.status_code == 403


def test_ofrep__another_environments_key__never_sees_this_environments_flags(
    client: Client, staging_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS)
    install_flags({"stage.only": flag_doc()}, environment="staging")
    response = client.post(
        "/ofrep/v1/evaluate/flags/demo.bool",
        content_type="application/json",
        **bearer(staging_token),
    )
    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"


# --- rate limits -----------------------------------------------------------------------


def test_ruleset__over_rate_limit__429_with_retry_after(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS)
    with override_settings(FLAGAPP={"RATE_LIMITS": {"sdk": {"rate": 0.01, "burst": 3}}}):
        statuses = [client.get(RULESET, **bearer(sdk_token)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = client.get(RULESET, **bearer(sdk_token))
        assert response.status_code == 429
        assert int(response["Retry-After"]) >= 1


def test_rate_limit__per_key__other_key_unaffected(
    client: Client, sdk_token: str, environments: Any, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS)
    _, other = sdk_keys.create_sdk_key("production", actor=None, reason="tests")
    with override_settings(FLAGAPP={"RATE_LIMITS": {"sdk": {"rate": 0.01, "burst": 1}}}):
        assert client.get(RULESET, **bearer(sdk_token)).status_code == 200
        assert client.get(RULESET, **bearer(sdk_token)).status_code == 429
        assert client.get(RULESET, **bearer(other)).status_code == 200


def test_rate_limit__bad_keys__limited_per_address(client: Client, environments: Any) -> None:
    with override_settings(FLAGAPP={"RATE_LIMITS": {"sdk": {"rate": 0.01, "burst": 2}}}):
        statuses = [client.get(RULESET, HTTP_X_API_KEY=f"fa_x_{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 429]


def test_rate_limit__scope_none__unlimited(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS)
    with override_settings(FLAGAPP={"RATE_LIMITS": {"sdk": None}}):
        assert {client.get(RULESET, **bearer(sdk_token)).status_code for _ in range(80)} == {200}


# --- events ----------------------------------------------------------------------------


def _post_events(client: Client, token: str, events: Any) -> Any:
    return client.post(
        EVENTS,
        data=json.dumps({"events": events}),
        content_type="application/json",
        **bearer(token),
    )


def test_events__valid_batch__stored_counted_and_sampled(client: Client, sdk_token: str) -> None:
    response = _post_events(
        client,
        sdk_token,
        [
            {
                "kind": "tracking",
                "key": "checkout.completed",
                "value": 42.5,
                "context": {"targetingKey": "u1"},
                "data": {"currency": "EUR"},
                "timestamp": "2026-11-23T10:00:00+00:00",
            },
            {
                "kind": "exposure",
                "flagKey": "demo.bool",
                "variant": "on",
                "context": {"targetingKey": "u1", "plan": "pro"},
                "timestamp": 1795000000000,
            },
            {
                "kind": "evaluation",
                "flagKey": "demo.bool",
                "variant": "off",
                "count": 9,
                "context": {"targetingKey": "u2"},
            },
        ],
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}
    tracking = SdkEvent.objects.get(kind="tracking")
    assert (tracking.key, tracking.value, tracking.targeting_key) == (
        "checkout.completed",
        42.5,
        "u1",
    )
    assert tracking.data == {"currency": "EUR"}
    exposure = SdkEvent.objects.get(kind="exposure")
    assert (exposure.flag_key, exposure.variant) == ("demo.bool", "on")
    stat = FlagEvaluationStat.objects.get(flag_key="demo.bool")
    assert stat.count == 10
    assert stat.last_evaluated_at is not None
    contexts = sampling.recent_contexts("production", 10)
    assert {"targetingKey": "u2"} in contexts
    assert {"targetingKey": "u1", "plan": "pro"} in contexts


def test_events__some_invalid__good_ones_kept_bad_ones_counted(
    client: Client, sdk_token: str
) -> None:
    response = _post_events(
        client,
        sdk_token,
        [
            {"kind": "tracking", "key": "ok"},
            {"kind": "tracking"},
            {"kind": "teleport", "key": "x"},
            {"kind": "tracking", "key": "y", "value": "NaN"},
            {"kind": "exposure", "flagKey": "a.b", "timestamp": "2026-01-01T00:00:00"},
        ],
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 4)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "name"),
        (2, "kind"),
        (3, "value"),
        (4, "timestamp"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert SdkEvent.objects.count() == 1


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"events": {}}'])
def test_events__not_a_batch__400(client: Client, sdk_token: str, body: bytes) -> None:
    response = client.post(EVENTS, data=body, content_type="application/json", **bearer(sdk_token))
    assert response.status_code == 400
    assert response.json()["errors"]


def test_events__too_many__413(client: Client, sdk_token: str) -> None:
    with override_settings(FLAGAPP={"EVENTS_MAX_BATCH": 5}):
        response = _post_events(client, sdk_token, [{"kind": "tracking", "key": "k"}] * 6)
    assert response.status_code == 413
    assert "EVENTS_MAX_BATCH" in response.json()["errors"][0]
    assert SdkEvent.objects.count() == 0


def test_events__body_over_limit__413(client: Client, sdk_token: str) -> None:
    with override_settings(FLAGAPP={"EVENTS_MAX_BODY_BYTES": 1000}):
        response = _post_events(
            client, sdk_token, [{"kind": "tracking", "key": "k", "data": {"p": "x" * 2000}}]
        )
    assert response.status_code == 413
    assert "EVENTS_MAX_BODY_BYTES" in response.json()["errors"][0]
    assert SdkEvent.objects.count() == 0


def test_events__sample_bound__oldest_contexts_dropped(client: Client, sdk_token: str) -> None:
    # One SDK key may fill the whole stored sample here (share 1.0); the default share cap
    # is tested in test_blast_radius_trust.py.
    with override_settings(
        FLAGAPP={"CONTEXT_SAMPLE_SIZE": 5, "BLAST_RADIUS_MAX_SOURCE_SHARE": 1.0}
    ):
        _post_events(
            client,
            sdk_token,
            [
                {"kind": "evaluation", "flagKey": "a.b", "context": {"targetingKey": f"u{i}"}}
                for i in range(12)
            ],
        )
        contexts = sampling.recent_contexts("production", 100)
    assert ContextSample.objects.count() == 5
    assert [c["targetingKey"] for c in contexts] == ["u11", "u10", "u9", "u8", "u7"]


def test_events__batch_encoded_by_the_python_provider__accepted_and_stored(
    client: Client, sdk_token: str
) -> None:
    from openfeature_provider.tracking import encode_events

    body = encode_events(
        [
            (
                "track",
                "checkout.completed",
                None,
                19.5,
                {"targetingKey": "u9"},
                {"sku": "a"},
                1.7e9,
            ),
            (
                "exposure",
                "demo.bool",
                "on",
                True,
                {"targetingKey": "u9", "plan": "pro"},
                None,
                1.7e9,
            ),
        ]
    )
    response = client.post(EVENTS, data=body, content_type="application/json", **bearer(sdk_token))
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    tracking = SdkEvent.objects.get(kind="tracking")
    assert (tracking.key, tracking.value, tracking.data) == (
        "checkout.completed",
        19.5,
        {"sku": "a"},
    )
    exposure = SdkEvent.objects.get(kind="exposure")
    assert (exposure.flag_key, exposure.variant, exposure.targeting_key) == (
        "demo.bool",
        "on",
        "u9",
    )
    assert exposure.timestamp.year == 2023


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.mark.parametrize(
    "store", ["cache", "local", pytest.param("redis", marks=pytest.mark.redis)]
)
def test_rate_limit__each_store__burst_then_429(
    client: Client, sdk_token: str, install_flags: Callable[..., Any], store: str
) -> None:
    from flagapp.sdk import ratelimit

    if store == "redis" and not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    install_flags(ALL_KINDS)
    conf = {
        "RATE_LIMIT_STORE": store,
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "RATE_LIMITS": {"ofrep": {"rate": 0.01, "burst": 5}},
    }
    identity = f"key:{keys.authenticate_token(sdk_token).key_id}"
    with override_settings(FLAGAPP=conf):
        ratelimit.reset("ofrep", identity)
        try:
            statuses = [
                client.post(
                    "/ofrep/v1/evaluate/flags/demo.bool",
                    content_type="application/json",
                    **bearer(sdk_token),
                ).status_code
                for _ in range(7)
            ]
        finally:
            ratelimit.reset("ofrep", identity)
    assert statuses == [200] * 5 + [429, 429]


@pytest.mark.redis
def test_rate_limit__redis_store_busy_key__leases_tokens_in_batches() -> None:
    from flagapp.sdk import ratelimit

    if not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    conf = {
        "RATE_LIMIT_STORE": "redis",
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "RATE_LIMIT_LEASE_SECONDS": 10_000,
        "RATE_LIMITS": {"ofrep": {"rate": 0.01, "burst": 40}},
    }
    with override_settings(FLAGAPP=conf):
        ratelimit.reset("ofrep", "lease-test")
        try:
            decisions = [ratelimit.check("ofrep", "lease-test").allowed for _ in range(45)]
            import redis

            from flagapp.conf import namespace

            stored = redis.Redis.from_url(conf["REDIS_URL"]).hget(
                f"flagapp:{namespace()}:rl:ofrep:lease-test", "t"
            )
        finally:
            ratelimit.reset("ofrep", "lease-test")
    # burst 40 is leased 10 at a time (a quarter of the burst): 40 allowed, then refused.
    assert decisions == [True] * 40 + [False] * 5
    assert stored is not None and float(stored) < 1


def test_ruleset__newer_version_only_in_shared_cache__200_not_stale_304(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    from django.core.cache import caches

    from flagapp import snapshot
    from tests.flagapp.sdk_helpers import ruleset_doc

    # The LocMem cache stands in for a shared one (SHARED_CACHE): one process plays both.
    flagapp = {"CACHE_CHECK_INTERVAL": 3600, "RULESET_RECHECK_SECONDS": 0, "SHARED_CACHE": True}
    with override_settings(FLAGAPP=flagapp):
        install_flags(ALL_KINDS, version=7)
        # Another process published v8: shared cache updated, no signal reached this one.
        doc = ruleset_doc(ALL_KINDS, version=8)
        caches["default"].set(snapshot.cache_document_key("production", 8), json.dumps(doc))
        caches["default"].set(snapshot.cache_version_key("production"), 8, None)
        response = client.get(
            RULESET, HTTP_IF_NONE_MATCH='"sha256:test-production-7"', **bearer(sdk_token)
        )
    assert response.status_code == 200
    assert json.loads(response.content)["version"] == 8


@pytest.mark.parametrize("announced", [True, False], ids=["published_here", "loaded"])
def test_ruleset__new_snapshot__served_as_stored_not_re_encoded(
    client: Client,
    sdk_token: str,
    environments: dict[str, Any],
    owner_group: Any,
    committed: Callable[[], Any],
    announced: bool,
) -> None:
    """The body of a new version is the stored snapshot's text, whether this process
    published it or loaded it: no process encodes the document again (at 10,000 flags
    ~70 ms of the event loop per process and version)."""
    from unittest import mock

    from flagapp import evaluation, services
    from flagapp.models import Snapshot
    from flagapp.sdk import views

    with committed():
        services.create_flag(
            key="team.flag", name="f", owner=owner_group, flag_type="ops", actor=None, reason="t"
        )
    if not announced:
        evaluation.clear_cache()  # as in a process that did not publish it
    stored = Snapshot.objects.filter(environment=environments["production"]).first()
    assert stored is not None
    with mock.patch.object(views, "_document", side_effect=AssertionError("re-encoded")):
        response = client.get(RULESET, **bearer(sdk_token))
    assert response.status_code == 200
    assert response.content == stored.document.encode()


def test_ruleset__new_version_answered_304__body_neither_encoded_nor_gzipped(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    """Compressing the full document is paid by the first request that wants it gzipped,
    not by every process on every new version."""
    from flagapp.sdk import views

    rs = install_flags(ALL_KINDS, version=7)
    response = client.get(
        RULESET,
        HTTP_IF_NONE_MATCH=f'"{rs.etag}"',
        HTTP_ACCEPT_ENCODING="gzip",
        **bearer(sdk_token),
    )
    assert response.status_code == 304
    assert views._bodies["production"]._plain is None  # not even encoded
    assert views._bodies["production"]._gzipped is None
    assert (
        client.get(RULESET, HTTP_ACCEPT_ENCODING="gzip", **bearer(sdk_token))["Content-Encoding"]
        == "gzip"
    )
    assert views._bodies["production"]._gzipped is not None
