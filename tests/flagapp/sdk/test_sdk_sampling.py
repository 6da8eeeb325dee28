"""flagapp.sampling: cheap offers from in-process evaluations, batched writes, bounded sample."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from flagapp import sampling
from flagapp.models import ContextSample, FlagEvaluationStat
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures

pytestmark = pytest.mark.django_db


def test_offer__many_evaluations__no_query_until_flush(
    environments: Any, django_assert_num_queries: Any
) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        sampling.reset()
        with django_assert_num_queries(0):
            for i in range(200):
                sampling.offer("production", "a.flag", {"targetingKey": f"u{i}"}, "on")
        assert sampling.pending_counts() == {("production", "a.flag"): 200}
        assert sampling.flush() == 200
    stat = FlagEvaluationStat.objects.get(flag_key="a.flag")
    assert stat.count == 200 and stat.last_evaluated_at is not None
    assert ContextSample.objects.count() == 200
    assert sampling.pending_counts() == {}


def test_flush__twice__counts_fold_into_one_row(environments: Any) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 0.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        for _ in range(3):
            sampling.offer("production", "a.flag", {"targetingKey": "u"}, "on")
        sampling.flush()
        for _ in range(4):
            sampling.offer("production", "a.flag", {"targetingKey": "u"}, "on")
        sampling.flush()
    assert FlagEvaluationStat.objects.get(flag_key="a.flag").count == 7
    assert ContextSample.objects.count() == 0  # sample rate 0: counts only


def test_offer__flush_interval_elapsed__flushes_inline(environments: Any) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 0}):
        sampling.offer("production", "b.flag", {"targetingKey": "u1"}, "off")
    assert FlagEvaluationStat.objects.get(flag_key="b.flag").count == 1


def test_recent_contexts__bounded_per_environment__newest_first(environments: Any) -> None:
    with override_settings(
        FLAGAPP={
            "CONTEXT_SAMPLE_RATE": 1.0,
            "SAMPLING_FLUSH_SECONDS": 3600,
            "CONTEXT_SAMPLE_SIZE": 10,
        }
    ):
        for i in range(25):
            sampling.offer("production", "a.flag", {"targetingKey": f"p{i}"}, "on")
        sampling.offer("staging", "a.flag", {"targetingKey": "s0"}, "on")
        production = sampling.recent_contexts("production", limit=100)
        staging = sampling.recent_contexts("staging", limit=100)
    assert [c["targetingKey"] for c in production] == [f"p{i}" for i in range(24, 14, -1)]
    assert staging == [{"targetingKey": "s0"}]
    assert sampling.recent_contexts("production", limit=3)[0]["targetingKey"] == "p24"


def test_offer__unknown_environment__dropped_quietly(environments: Any) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        sampling.offer("nowhere", "a.flag", {"targetingKey": "u"}, "on")
        sampling.flush()
    assert not FlagEvaluationStat.objects.exists()


def test_evaluation_stats__after_offers__count_and_last_time(environments: Any) -> None:
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 0.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        sampling.offer("production", "a.flag", None, "on")
        stats = sampling.evaluation_stats("production")
    count, last = stats["a.flag"]
    assert count == 1 and last is not None


def test_flagapp_evaluate__in_process__counted_and_sampled_through_record(
    environments: Any, install_flags: Any
) -> None:
    from flagapp import evaluation
    from tests.flagapp.sdk_helpers import ALL_KINDS

    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        install_flags(ALL_KINDS)
        for i in range(50):
            evaluation.evaluate(
                "demo.bool", False, {"targetingKey": f"in-proc-{i}"}, environment="production"
            )
        evaluation.flush_usage()
        contexts = sampling.recent_contexts("production", 100)
    assert FlagEvaluationStat.objects.get(flag_key="demo.bool").count == 50
    assert contexts and contexts[0] == {"targetingKey": "in-proc-49"}
