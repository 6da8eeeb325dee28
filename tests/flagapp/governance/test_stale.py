"""Stale-flag report: not evaluated for N days; release flags ready to remove."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import TestCase, override_settings
from django.utils import timezone

from flagapp import sampling
from flagapp.governance.stale import mail_stale_report, stale_report
from flagapp.models import Environment, FlagEvaluationStat, TargetingRule
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Group:
    sampling.reset()
    return Group.objects.create(name="search")


def _evaluated(env: Environment, key: str, days_ago: float) -> None:
    FlagEvaluationStat.objects.create(
        environment=env,
        flag_key=key,
        count=10,
        last_evaluated_at=timezone.now() - dt.timedelta(days=days_ago),
    )


def test_stale__last_evaluation_older_than_n_days__listed(team: Group) -> None:
    prod, dev = h.env("production"), h.env("development")
    h.flag("search.old.one", team, flag_type="ops", created_days_ago=90)
    h.flag("search.fresh.one", team, flag_type="ops", created_days_ago=90)
    _evaluated(prod, "search.old.one", 45)
    _evaluated(prod, "search.fresh.one", 45)
    _evaluated(dev, "search.fresh.one", 2)  # recent in another environment: not stale
    report = stale_report(days=30)
    assert list(report.not_evaluated) == ["search.old.one"]


def test_stale__never_evaluated__stale_only_when_older_than_n_days(team: Group) -> None:
    h.flag("search.never.old", team, flag_type="ops", created_days_ago=40)
    h.flag("search.never.new", team, flag_type="ops", created_days_ago=5)
    report = stale_report(days=30)
    assert report.not_evaluated == {"search.never.old": None}


def test_stale__in_process_counts__flushed_before_the_report(team: Group) -> None:
    h.env("production")
    h.flag("search.hot.path", team, flag_type="ops", created_days_ago=40)
    sampling.offer("production", "search.hot.path", None, "on")
    assert stale_report(days=30).not_evaluated == {}


def test_ready_to_remove__one_variant_everywhere_for_n_days__listed(team: Group) -> None:
    prod, dev = h.env("production"), h.env("development")
    done = h.flag("search.fuzzy.v2", team, expires_on=dt.date(2030, 1, 1))
    h.state(done, prod, fallthrough={"variant": "on"}, days_ago=40)
    full_rollout = {
        "rollout": {"weights": [{"variant": "on", "weight": 100}, {"variant": "off", "weight": 0}]}
    }
    h.state(done, dev, fallthrough=full_rollout, days_ago=40)
    report = stale_report(days=30)
    assert report.ready_to_remove == {"search.fuzzy.v2": "on"}


@pytest.mark.parametrize(
    "variation",
    ["recent_change", "split", "rule", "disabled", "different_variants", "not_release"],
)
def test_ready_to_remove__anything_context_dependent_or_recent__not_listed(
    team: Group, variation: str
) -> None:
    prod, dev = h.env("production"), h.env("development")
    f = h.flag(
        "search.fuzzy.v2",
        team,
        flag_type="experiment" if variation == "not_release" else "release",
        expires_on=dt.date(2030, 1, 1),
    )
    serve = {"variant": "on"}
    if variation == "split":
        serve = {
            "rollout": {
                "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
            }
        }
    h.state(
        f,
        prod,
        fallthrough=serve,
        days_ago=2 if variation == "recent_change" else 40,
        enabled=variation != "disabled",
    )
    dev_state = h.state(
        f,
        dev,
        fallthrough={"variant": "off" if variation == "different_variants" else "on"},
        days_ago=40,
    )
    if variation == "rule":
        TargetingRule.objects.create(
            state=dev_state, rule_id="r1", conditions=[], serve={"variant": "off"}
        )
    assert stale_report(days=30).ready_to_remove == {}


def test_mail_stale_report__recipients_configured__one_mail_listing_flags(team: Group) -> None:
    h.flag("search.never.old", team, flag_type="ops", created_days_ago=40)
    report = stale_report(days=30)
    assert mail_stale_report(report) == 0  # nobody configured: only logged
    with (
        override_settings(FLAGAPP={"STALE_REPORT_EMAILS": ["platform@example.com"]}),
        TestCase.captureOnCommitCallbacks(execute=True),  # the mail is sent after COMMIT
    ):
        assert mail_stale_report(report) == 1
    assert len(mail.outbox) == 1
    assert "search.never.old" in mail.outbox[0].body
