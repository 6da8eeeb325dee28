"""Exposures and ``track()`` from Django code (issue 14 part 1).

``flagapp.evaluate`` and everything built on it record exposures, ``flagapp.track`` records
tracking events, both into memory only (no query on the request path), stored after the
response as ``SdkEvent`` rows by the writer of ``POST /sdk/v1/events``; an experiment and a
stored-events guardrail fed only by Django views see the right users and conversions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.db import DatabaseError
from django.test import Client, override_settings
from django.utils import timezone

import flagapp
from flagapp import exposures, services
from flagapp.models import Experiment, SdkEvent
from flagapp.rollouts.events_source import StoredEventsSource
from flagapp.rollouts.experiments import analyse
from flagapp.rollouts.guardrails import GuardrailSpec, MetricKind
from flagapp.rollouts.metrics import MetricQuery
from openfeature_provider.engine import parse_ruleset
from tests.flagapp.eval_helpers import flag_doc, make_environment, ruleset_doc
from tests.flagapp.exposure_views import FLAG

VIEWS = "tests.flagapp.exposure_views"
BUILDER = {
    "ENVIRONMENT": "production",
    "SINGLE_PROCESS": True,
    "CONTEXT_BUILDER": "tests.flagapp.exposure_views.user_context",
}


def observed_doc(**kwargs: Any) -> dict[str, Any]:
    """A flag document the publisher marked observed (an experiment or guardrails read it)."""
    doc = flag_doc(**kwargs)
    doc["metadata"][exposures.OBSERVED] = True
    return doc


@pytest.fixture
def warm(db: Any) -> Iterator[None]:
    """A production environment and FLAG (on for everyone, observed) in the cache, and an
    unobserved flag, "shop.banner" (on for everyone: nothing reads its exposures)."""
    from flagapp import evaluation

    make_environment("production")
    doc = ruleset_doc({FLAG: observed_doc(), "shop.banner": flag_doc()}, version=3)
    evaluation.install("production", parse_ruleset(doc))
    yield
    evaluation.clear_cache()


def _stored(kind: str = SdkEvent.KIND_EXPOSURE) -> list[SdkEvent]:
    return list(SdkEvent.objects.filter(kind=kind).order_by("id"))


# -- exposures from flagapp.evaluate ---------------------------------------------------------


def test_evaluate__warm_flag__no_query_then_one_exposure_stored_on_flush(
    warm: None, django_assert_num_queries: Callable[..., AbstractContextManager[Any]]
) -> None:
    with django_assert_num_queries(0):
        for _ in range(3):
            assert flagapp.evaluate(FLAG, False, {"targetingKey": "u1", "plan": "pro"}).value
    assert exposures.pending() == 3
    flagapp.flush_usage()
    rows = _stored()
    assert [(r.flag_key, r.key, r.variant, r.targeting_key) for r in rows] == [
        (FLAG, FLAG, "on", "u1")
    ] * 3
    assert rows[0].data == {
        "reason": "STATIC",
        "ruleId": None,
        "source": "in-process",
        "snapshotVersion": 3,
    }
    assert exposures.pending() == 0


def test_evaluate__record_false__no_exposure(warm: None) -> None:
    assert flagapp.evaluate(FLAG, False, {"targetingKey": "u1"}, record=False).value is True
    assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG, record=False) is True
    assert flagapp.get_value({"targetingKey": "u1"}, FLAG, False, record=False) is True
    assert exposures.pending() == 0


def test_evaluate__record_exposures_setting_off__no_exposure(warm: None) -> None:
    with override_settings(FLAGAPP={"ENVIRONMENT": "production", "RECORD_EXPOSURES": False}):
        assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True
        assert exposures.pending() == 0
    assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True
    assert exposures.pending() == 1


def test_evaluate__sample_rate__share_recorded(warm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0.1, 0.3, 0.5, 0.7, 0.9] * 20)  # a fixed sequence instead of random()
    monkeypatch.setattr(exposures, "_random", lambda: next(draws))
    with override_settings(FLAGAPP={"ENVIRONMENT": "production", "EXPOSURE_SAMPLE_RATE": 0.4}):
        for _ in range(100):
            flagapp.flag_is_active({"targetingKey": "u1"}, FLAG)
        assert exposures.pending() == 40  # draws 0.1 and 0.3 of every five


def test_evaluate__default_served__no_exposure(db: Any) -> None:
    from flagapp import evaluation

    make_environment("production")
    evaluation.install(
        "production",
        parse_ruleset(ruleset_doc({FLAG: flag_doc(enabled=False)})),
    )
    assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is False
    assert flagapp.flag_is_active({"targetingKey": "u1"}, "no.such-flag") is False
    assert exposures.pending() == 0


def test_async_twins__warm__exposures_recorded(warm: None) -> None:
    async def check() -> None:
        assert await flagapp.aflag_is_active({"targetingKey": "u1"}, FLAG) is True
        assert await flagapp.aget_value({"targetingKey": "u2"}, FLAG, False) is True
        assert (await flagapp.aevaluate(FLAG, False, {"targetingKey": "u3"}, record=False)).value

    asyncio.run(check())
    assert exposures.pending() == 2


@pytest.mark.urls(VIEWS)
@override_settings(FLAGAPP=BUILDER)
@pytest.mark.parametrize(
    "url", ["/shop/", "/ashop/", "/tagged/", "/decorated/", "/mixed/"], ids=lambda u: u
)
def test_views__every_django_surface__one_exposure_per_request(warm: None, url: str) -> None:
    response = Client().get(url, {"user": "u9"})
    assert response.content == b"green"
    flagapp.flush_usage()
    assert [(r.flag_key, r.variant, r.targeting_key) for r in _stored()] == [(FLAG, "on", "u9")]


@pytest.mark.urls(VIEWS)
@override_settings(FLAGAPP=BUILDER)
def test_views__record_false__no_exposure(warm: None) -> None:
    assert Client().get("/unrecorded/", {"user": "u9"}).content == b"green"
    flagapp.flush_usage()
    assert _stored() == []


@pytest.mark.urls(VIEWS)
def test_request_finished__flush_due__stored_after_the_response(warm: None) -> None:
    settings = {**BUILDER, "SAMPLING_FLUSH_SECONDS": 0.0}
    with override_settings(FLAGAPP=settings):
        assert Client().get("/shop/", {"user": "u1"}).content == b"green"
        assert Client().get("/buy/", {"user": "u1", "amount": "12.5"}).content == b"thanks"
    assert exposures.pending() == 0
    assert [(r.kind, r.key, r.targeting_key, r.value) for r in SdkEvent.objects.order_by("id")] == [
        ("exposure", FLAG, "u1", None),
        ("tracking", "purchase", "u1", 12.5),
    ]


# -- which flags are recorded: RECORD_EXPOSURES "observed" (default), True, False -------------


def test_evaluate__unobserved_flag_by_default__counted_not_recorded(
    warm: None, django_assert_num_queries: Callable[..., AbstractContextManager[Any]]
) -> None:
    from flagapp import sampling

    before = exposures.stats()["unobserved"]
    with django_assert_num_queries(0):
        for i in range(5):
            assert flagapp.flag_is_active({"targetingKey": f"u{i}"}, "shop.banner") is True
    assert exposures.pending() == 0
    assert exposures.stats()["unobserved"] == before + 5
    assert sampling.pending_counts()[("production", "shop.banner")] == 5  # stale report
    assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True
    assert exposures.pending() == 1


def test_evaluate__record_exposures_true__every_flag_recorded(warm: None) -> None:
    with override_settings(FLAGAPP={"ENVIRONMENT": "production", "RECORD_EXPOSURES": True}):
        assert flagapp.flag_is_active({"targetingKey": "u1"}, "shop.banner") is True
        assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True
        flagapp.flush_usage()
    assert sorted(SdkEvent.objects.values_list("flag_key", flat=True)) == ["shop.banner", FLAG]


def _observed_in_snapshot(env_key: str = "production") -> set[str]:
    from flagapp import publishing

    latest = publishing.latest(env_key)
    assert latest is not None
    return {k for k, f in latest.data["flags"].items() if f["metadata"].get(exposures.OBSERVED)}


def test_publish__experiment_started_then_ended__flag_marked_observed_then_not(
    make_flag: Callable[..., Any],
    envs: dict[str, Any],
    committed: Callable[[], AbstractContextManager[Any]],
) -> None:
    flag = make_flag("shop.hero", flag_type="experiment", expires_on=None)
    make_flag("shop.other")
    with committed():
        services.update_flag_state(flag, envs["production"], enabled=True, actor=None, reason="on")
    assert _observed_in_snapshot() == set()
    with committed():
        experiment = services.create_experiment(
            actor=None,
            flag=flag,
            environment=envs["production"],
            name="hero",
            control_variant="off",
            conversion_event="purchase",
            started_at=timezone.now(),
        )
    assert _observed_in_snapshot() == {"shop.hero"}
    with committed():
        services.update_experiment(experiment, actor=None, ended_at=timezone.now())
    assert _observed_in_snapshot() == set()


def test_publish__guarded_rollout_running__flag_observed_until_rolled_back(
    make_flag: Callable[..., Any],
    envs: dict[str, Any],
    committed: Callable[[], AbstractContextManager[Any]],
) -> None:
    from flagapp.rollouts import controller

    flag = make_flag("shop.fast-path", flag_type="ops")
    env = envs["production"]
    with committed():
        services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
        plan = controller.create_plan(
            flag,
            env,
            treatment="on",
            control="off",
            steps=[1000, 10000],
            min_step_seconds=60,
            notify_owners=False,
            guardrails=[{"metric": "error_rate", "threshold": 0.05, "min_sample": 10}],
        )
    assert _observed_in_snapshot() == set()  # a draft reads nothing yet
    with committed():
        controller.start(plan, actor=None, reason="go")
    assert _observed_in_snapshot() == {"shop.fast-path"}
    with committed():
        controller.rollback(plan, actor=None, reason="stop")
    assert _observed_in_snapshot() == set()


# -- OFREP evaluations -----------------------------------------------------------------------


def test_ofrep_evaluation__observed_flag__exposure_recorded_once_no_query_to_record(
    warm: None, django_assert_num_queries: Callable[..., AbstractContextManager[Any]]
) -> None:
    from flagapp.models import Environment
    from flagapp.services import sdk_keys

    _key, token = sdk_keys.create_sdk_key(
        Environment.objects.get(key="production"), name="t", actor=None, reason="tests"
    )
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def post(flag: str, user: str) -> Any:
        return client.post(
            f"/ofrep/v1/evaluate/flags/{flag}",
            {"context": {"targetingKey": user, "plan": "pro"}},
            content_type="application/json",
            **auth,
        )

    assert post(FLAG, "w1").json()["value"] is True  # warms the key's cache
    flagapp.flush_usage()  # the next flushes are due in SAMPLING_FLUSH_SECONDS
    SdkEvent.objects.all().delete()
    with django_assert_num_queries(0):
        assert post(FLAG, "w2").json()["variant"] == "on"
        assert post("shop.banner", "w2").json()["value"] is True  # unobserved: counted
        assert post("no.such-flag", "w2").status_code == 404  # no variant served
    assert exposures.pending() == 1
    flagapp.flush_usage()
    flagapp.flush_usage()
    rows = _stored()
    assert [(r.flag_key, r.variant, r.targeting_key, r.data["source"]) for r in rows] == [
        (FLAG, "on", "w2", "ofrep")
    ]


def test_ofrep_evaluation__sample_rate_zero__nothing_recorded(warm: None) -> None:
    from flagapp.models import Environment
    from flagapp.services import sdk_keys

    _key, token = sdk_keys.create_sdk_key(
        Environment.objects.get(key="production"), name="t", actor=None, reason="tests"
    )
    with override_settings(FLAGAPP={"ENVIRONMENT": "production", "EXPOSURE_SAMPLE_RATE": 0.0}):
        response = Client().post(
            f"/ofrep/v1/evaluate/flags/{FLAG}",
            {"context": {"targetingKey": "w1"}},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.json()["value"] is True
        assert exposures.pending() == 0


# -- flagapp.track -----------------------------------------------------------------------------


def test_track__dict_context__no_query_stored_once_on_flush(
    warm: None, django_assert_num_queries: Callable[..., AbstractContextManager[Any]]
) -> None:
    with django_assert_num_queries(0):
        flagapp.track({"targetingKey": "u1"}, "purchase", 30, details={"order": "A-17"})
        flagapp.track({"targetingKey": "u2"}, "error")
    flagapp.flush_usage()
    flagapp.flush_usage()  # nothing left: not stored twice
    rows = _stored(SdkEvent.KIND_TRACKING)
    assert [(r.key, r.targeting_key, r.value, r.data) for r in rows] == [
        ("purchase", "u1", 30.0, {"order": "A-17"}),
        ("error", "u2", None, {}),
    ]


@pytest.mark.parametrize(
    ("event", "value", "details", "field"),
    [
        ("", None, None, None),
        (7, None, None, "event"),
        ("x" * 201, None, None, "event"),
        ("purchase", math.nan, None, "value"),
        ("purchase", True, None, "value"),
        ("purchase", "12", None, "value"),
        ("purchase", None, {"blob": "x" * 9000}, "details"),
    ],
)
def test_track__bad_input__value_error_naming_the_field(
    warm: None, event: Any, value: Any, details: Any, field: str | None
) -> None:
    with pytest.raises(ValueError) as caught:
        flagapp.track({"targetingKey": "u1"}, event, value, details=details)
    assert str(caught.value).startswith(f"{field or 'event'}:")
    assert exposures.pending() == 0


def test_track__not_a_context__value_error(warm: None) -> None:
    with pytest.raises(ValueError, match="request_or_context"):
        flagapp.track(42, "purchase")


def test_atrack__dict_context__buffered_inline(warm: None) -> None:
    asyncio.run(flagapp.atrack({"targetingKey": "u1"}, "purchase", 5))
    assert exposures.pending() == 1


# -- the buffer ------------------------------------------------------------------------------


def test_flush__database_error__events_kept_and_stored_exactly_once_later(
    warm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagapp.sdk import events

    flagapp.track({"targetingKey": "u1"}, "purchase")
    flagapp.flag_is_active({"targetingKey": "u1"}, FLAG)
    real = events.write_events

    def down(env_key: str, batch: Any) -> None:
        real(env_key, batch)  # written, then the transaction fails: rolled back
        raise DatabaseError("connection lost")

    monkeypatch.setattr(events, "write_events", down)
    assert exposures.flush() == 0
    assert SdkEvent.objects.count() == 0
    assert exposures.pending() == 2
    monkeypatch.setattr(events, "write_events", real)
    assert exposures.flush() == 2
    assert exposures.flush() == 0
    assert sorted(SdkEvent.objects.values_list("kind", flat=True)) == ["exposure", "tracking"]
    assert exposures.stats()["failed_flushes"] >= 1


def test_flush__unknown_environment__dropped_and_counted(warm: None) -> None:
    before = exposures.stats()["dropped"]
    flagapp.track({"targetingKey": "u1"}, "purchase", environment="nowhere")
    flagapp.track({"targetingKey": "u1"}, "purchase")
    assert exposures.flush() == 1
    assert exposures.stats()["dropped"] == before + 1
    assert SdkEvent.objects.count() == 1


def test_buffer__full__oldest_dropped_and_counted(warm: None) -> None:
    with override_settings(FLAGAPP={"ENVIRONMENT": "production", "EVENT_BUFFER_SIZE": 5}):
        before = exposures.stats()["overflow_dropped"]
        for i in range(8):
            flagapp.track({"targetingKey": f"u{i}"}, "purchase")
        assert exposures.pending() == 5
        assert exposures.stats()["overflow_dropped"] == before + 3
        exposures.flush()
    users = list(SdkEvent.objects.order_by("id").values_list("targeting_key", flat=True))
    assert users == ["u3", "u4", "u5", "u6", "u7"]


# -- end to end: an experiment and a guardrail fed only by Django views -----------------------


@pytest.fixture
def experiment(
    make_flag: Callable[..., Any],
    envs: dict[str, Any],
    committed: Callable[[], AbstractContextManager[Any]],
) -> Experiment:
    flag = make_flag(FLAG, flag_type="experiment", expires_on=None)
    env = envs["production"]
    with committed():
        services.update_flag_state(
            flag,
            env,
            enabled=True,
            actor=None,
            reason="50/50",
            fallthrough={
                "rollout": {
                    "weights": [
                        {"variant": "on", "weight": 5000},
                        {"variant": "off", "weight": 5000},
                    ]
                }
            },
        )
    with committed():  # the experiment marks FLAG observed in a new snapshot
        return Experiment.objects.create(
            flag=flag,
            environment=env,
            name="green button",
            control_variant="off",
            conversion_event="purchase",
            started_at=timezone.now() - dt.timedelta(minutes=1),
        )


@pytest.mark.urls(VIEWS)
@override_settings(FLAGAPP=BUILDER)
def test_django_views_only__experiment_and_guardrail__see_users_and_conversions(
    experiment: Experiment,
) -> None:
    client = Client()
    variant_of: dict[str, str] = {}
    for i in range(120):
        user = f"u{i}"
        body = client.get("/shop/", {"user": user}).content
        variant_of[user] = "on" if body == b"green" else "off"
    # Green converts one user in three, grey one in five; an async view for some of them;
    # a stranger who never saw the shop buys too (not counted anywhere).
    buyers = [
        u
        for i, u in enumerate(variant_of)
        if (variant_of[u] == "on" and i % 3 == 0) or (variant_of[u] == "off" and i % 5 == 0)
    ]
    for n, user in enumerate(buyers):
        client.get("/abuy/" if n % 2 else "/buy/", {"user": user, "amount": str(10 + n)})
    client.get("/buy/", {"user": "stranger"})

    users = {v: sum(1 for x in variant_of.values() if x == v) for v in ("on", "off")}
    converted = {v: sum(1 for u in buyers if variant_of[u] == v) for v in ("on", "off")}
    assert min(users.values()) > 30  # both arms really served

    results = {r.variant: r for r in analyse(experiment).variants}
    assert {v: (results[v].users, results[v].conversions) for v in ("on", "off")} == {
        v: (users[v], converted[v]) for v in ("on", "off")
    }

    now = timezone.now()
    query = MetricQuery(
        FLAG,
        "production",
        GuardrailSpec(MetricKind.EVENT_RATE, 1.0, event_key="purchase", min_sample=1),
        experiment.started_at,
        now,
        ("on", "off"),
    )
    samples = StoredEventsSource().measure(query)
    assert {v: (samples[v].n, samples[v].count) for v in ("on", "off")} == {
        v: (users[v], converted[v]) for v in ("on", "off")
    }
    # Stored once each: one exposure per shop visit, one tracking row per purchase.
    assert SdkEvent.objects.filter(kind="exposure").count() == 120
    assert SdkEvent.objects.filter(kind="tracking").count() == len(buyers) + 1
