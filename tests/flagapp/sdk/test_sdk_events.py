"""POST /sdk/v1/events exactly once, and evaluation statistics never silently dropped
(issue 10, item 5).

What was found: NaN/Infinity (Python's json writes them) or a NUL character in one event made
the whole batch a 500 *after* the exposure rows were committed; the provider resent the
batch and 201 events became 804 rows in 12 s. A NaN attribute in an OFREP context broke the
buffered sample flush and its evaluation counts were lost (101 of 450 counted).

Now: each event is validated on its own (a bad one is rejected and counted in the 202
answer, naming the field), a batch is stored in one transaction, and the provider's
``X-Flagapp-Batch-Id`` makes a retried batch stored once (the retry gets the first answer).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client, override_settings

from flagapp import sampling
from flagapp.models import ContextSample, FlagEvaluationStat, SdkEvent
from flagapp.services import sdk_keys
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer

pytestmark = pytest.mark.django_db

EVENTS = "/sdk/v1/events"


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def _post(client: Client, token: str, body: bytes | str, batch_id: str | None = None) -> Any:
    extra = {"HTTP_X_FLAGAPP_BATCH_ID": batch_id} if batch_id is not None else {}
    return client.post(EVENTS, data=body, content_type="application/json", **bearer(token), **extra)


def _batch(n: int, prefix: str = "u") -> str:
    return json.dumps(
        {
            "events": [
                {
                    "kind": "exposure",
                    "flag": "demo.bool",
                    "variant": "on",
                    "context": {"targetingKey": f"{prefix}{i}"},
                }
                for i in range(n)
            ]
        }
    )


#: One valid event, then one event per kind of unstorable value, then one valid event.
POISONED = (
    '{"events": ['
    '{"kind": "track", "name": "ok.first", "value": 1},'
    '{"kind": "track", "name": "nan.details", "details": {"ratio": NaN}},'
    '{"kind": "exposure", "flag": "demo.bool",'
    ' "context": {"targetingKey": "u", "score": Infinity}},'
    '{"kind": "track", "name": "nul\\u0000name"},'
    '{"kind": "track", "name": "overflow", "value": 1e400},'
    '{"kind": "track", "name": "deep", "details": {"a": ' + "[" * 80 + "]" * 80 + "}},"
    '{"kind": "track", "name": "ok.last", "details": {"k": "v"}}'
    "]}"
)


def test_events__nan_infinity_nul_overflow_deep_in_some_events__only_those_rejected(
    client: Client, sdk_token: str
) -> None:
    response = _post(client, sdk_token, POISONED)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == 5
    fields = {e["index"]: e["field"] for e in body["errors"]}
    assert fields == {
        1: "details.ratio",
        2: "context.score",
        3: "name",
        4: "value",
        5: "details.a" + "[0]" * 62,
    }
    assert all(e["message"] for e in body["errors"])
    assert sorted(SdkEvent.objects.values_list("key", flat=True)) == ["ok.first", "ok.last"]


def test_events__answer_shape__accepted_rejected_counts_and_errors(
    client: Client, sdk_token: str
) -> None:
    response = _post(client, sdk_token, _batch(3))
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}


def test_events__same_batch_id_retried__stored_once_and_same_answer(
    client: Client, sdk_token: str
) -> None:
    """The provider resends a batch whose answer it did not get (a timeout, a cut
    connection): the retry must not store the events again, nor count them again."""
    first = _post(client, sdk_token, _batch(201), batch_id="0f" * 16)
    samples = ContextSample.objects.count()
    retries = [_post(client, sdk_token, _batch(201), batch_id="0f" * 16) for _ in range(3)]
    assert first.status_code == 202
    assert [r.status_code for r in retries] == [202] * 3
    assert all(r.json() == first.json() for r in retries)
    assert retries[0]["X-Flagapp-Batch-Replayed"] == "true"
    assert SdkEvent.objects.count() == 201
    assert FlagEvaluationStat.objects.get(flag_key="demo.bool").count == 201
    assert ContextSample.objects.count() == samples


def test_events__same_batch_id_from_another_key__stored_for_each_key(
    client: Client, sdk_token: str, environments: Any
) -> None:
    _key, other = sdk_keys.create_sdk_key(
        environments["production"], name="other", actor=None, reason="tests"
    )
    _post(client, sdk_token, _batch(2), batch_id="abc123")
    _post(client, other, _batch(2), batch_id="abc123")
    assert SdkEvent.objects.count() == 4


def test_events__no_batch_id__stored_every_time(client: Client, sdk_token: str) -> None:
    """Without the header (older SDKs) there is nothing to deduplicate on."""
    _post(client, sdk_token, _batch(2))
    _post(client, sdk_token, _batch(2))
    assert SdkEvent.objects.count() == 4


@pytest.mark.parametrize("batch_id", ["", "x" * 65, "has space", "ümlaut"])
def test_events__malformed_batch_id__400_naming_the_header(
    client: Client, sdk_token: str, batch_id: str
) -> None:
    response = _post(client, sdk_token, _batch(1), batch_id=batch_id)
    assert response.status_code == 400
    assert "X-Flagapp-Batch-Id" in response.json()["errors"][0]
    assert SdkEvent.objects.count() == 0


def test_events__failure_after_events_written__nothing_stored_retry_stores_once(
    client: Client, sdk_token: str
) -> None:
    """One transaction per batch: a failure half-way (here: the sample write) stores
    nothing, answers 503 (retry), and the retry with the same id stores the batch once."""
    with mock.patch.object(sampling, "record", side_effect=OperationalError("gone")):
        failed = _post(client, sdk_token, _batch(5), batch_id="retry-me")
    assert failed.status_code == 503
    assert SdkEvent.objects.count() == 0
    assert not FlagEvaluationStat.objects.exists()
    retried = _post(client, sdk_token, _batch(5), batch_id="retry-me")
    assert retried.json()["accepted"] == 5
    assert SdkEvent.objects.count() == 5


def test_events__python_provider_batch_with_nan_details__only_that_event_rejected(
    client: Client, sdk_token: str
) -> None:
    """``client.track(..., details={"x": float("nan")})`` must not poison the batch."""
    from openfeature_provider.tracking import encode_events

    body = encode_events(
        [
            ("track", "bad", None, None, {"targetingKey": "u1"}, {"x": float("nan")}, 1.7e9),
            ("track", "good", None, 2.0, {"targetingKey": "u1"}, {"x": 1}, 1.7e9),
        ]
    )
    response = _post(client, sdk_token, body)
    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 1)
    assert SdkEvent.objects.get().key == "good"


# --- statistics never silently dropped ----------------------------------------------------


def test_ofrep__nan_context_attribute__400_invalid_context_naming_field_and_counted_nowhere(
    client: Client, sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    install_flags(ALL_KINDS)
    response = client.post(
        "/ofrep/v1/evaluate/flags/demo.bool",
        data=b'{"context": {"targetingKey": "u1", "score": NaN}}',
        content_type="application/json",
        **bearer(sdk_token),
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert "context.score" in response.json()["errorDetails"]


def test_sampling_flush__unstorable_contexts__samples_dropped_counts_kept(
    environments: Any,
) -> None:
    """In-process or OFREP contexts the database cannot store (NaN, NUL, objects json
    cannot encode) lose their sample, never the evaluation counts of the whole flush."""
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        for i in range(450):
            if i % 9 == 0:
                ctx: dict[str, Any] = {"targetingKey": f"u{i}", "score": float("nan")}
            elif i % 9 == 1:
                ctx = {"targetingKey": f"u{i}\x00"}
            elif i % 9 == 2:
                ctx = {"targetingKey": f"u{i}", "when": object()}
            else:
                ctx = {"targetingKey": f"u{i}"}
            sampling.offer("production", "demo.bool", ctx, "on")
        sampling.flush()
    assert FlagEvaluationStat.objects.get(flag_key="demo.bool").count == 450
    assert ContextSample.objects.count() == 300
    assert sampling.dropped_samples() >= 150


def test_sampling_flush__database_down__counts_kept_for_the_next_flush(
    environments: Any,
) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 0.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        for _ in range(7):
            sampling.offer("production", "demo.bool", {"targetingKey": "u"}, "on")
        with mock.patch.object(sampling, "fold_counts", side_effect=OperationalError("gone")):
            sampling.flush()
        assert sampling.pending_counts() == {("production", "demo.bool"): 7}
        sampling.flush()
    assert FlagEvaluationStat.objects.get(flag_key="demo.bool").count == 7


def test_events__lone_surrogate_in_a_field_name_or_value__that_event_rejected_json_answer(
    client: Client, sdk_token: str
) -> None:
    """JSON's ``\\udXXX`` escapes can produce a lone surrogate, which has no UTF-8 form: the
    database cannot store it and an answer echoing it could not be encoded (a 500)."""
    body = (
        b'{"events": [{"kind": "track", "name": "a", "details": {"\\udafb": 1}},'
        b'{"kind": "track", "name": "b\\udafb"}, {"kind": "track", "name": "ok"}]}'
    )
    response = _post(client, sdk_token, body, batch_id="surrogates")
    assert response.status_code == 202
    answer = json.loads(response.content)
    assert (answer["accepted"], answer["rejected"]) == (1, 2)
    assert [e["field"] for e in answer["errors"]] == ["details.\\udafb", "name"]
    assert SdkEvent.objects.get().key == "ok"
