"""The flag page as a per-environment overview, the on/off toggle per environment (page and
list), "last evaluated" in the list and the pending count on the admin index
(flagapp.admin.overview)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flagapp import sampling, services
from flagapp.evaluation import evaluate
from flagapp.governance import change_requests as crs
from flagapp.models import (
    ChangeRequest,
    ContextSample,
    Environment,
    Flag,
    FlagEvaluationStat,
    FlagState,
)
from flagapp.policy import GrantedApproval
from flagapp.sdk import events
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

LIST = "/admin/flagapp/flag/"
SPLIT_10 = {"rollout": {"weights": [{"variant": "on", "weight": 1000},
                                    {"variant": "off", "weight": 9000}]}}  # fmt: skip
PRO_RULE = {
    "id": "pros",
    "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
    "serve": {"variant": "on"},
}
STATE_PERMS = (
    "flagapp.view_flag",
    "flagapp.change_flag",
    "flagapp.view_flagstate",
    "flagapp.change_flagstate",
    "flagapp.view_changerequest",
)


def _text(html: str) -> str:
    """The page's text without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _card(html: str, env_key: str) -> str:
    match = re.search(
        rf'<section class="env-card" id="env-card-{re.escape(env_key)}".*?</section>', html, re.S
    )
    assert match, f"no card for {env_key}"
    return _text(match.group(0))


@pytest.fixture
def alice(db: Any) -> User:
    return h.user("alice", perms=(*STATE_PERMS, "flagapp.change_protected_environment"))


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def make(user: User) -> Client:
        c = Client()
        c.force_login(user)
        return c

    return make


@pytest.fixture
def flag(make_flag: Callable[..., Flag], envs: dict[str, Environment], alice: User) -> Flag:
    f = make_flag("checkout.new-flow")
    services.update_flag_state(
        f, envs["staging"], actor=alice, reason="ramp to 10% for pros",
        enabled=True, fallthrough=SPLIT_10, rules=[PRO_RULE],
    )  # fmt: skip
    return f


# --- the cards ---------------------------------------------------------------------------------


def test_flag_page__cards__one_per_environment_with_served_in_words(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    html = client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode()
    staging = _card(html, "staging")
    assert "ON" in staging
    assert "plan in pro, enterprise → on" in staging
    assert "Everyone else: on 10% · off 90%" in staging
    assert "1000" not in staging and "{'" not in staging
    production = _card(html, "production")
    assert "OFF" in production and "Off: everyone gets the caller's default" in production
    assert "When on: Everyone: off" in production  # what turning it on would serve
    assert html.count('class="env-card"') == 3


def test_flag_page__cards__prerequisites_and_split_in_percent(
    make_flag: Callable[..., Flag],
    flag: Flag,
    envs: dict[str, Environment],
    alice: User,
    client_for: Callable[[User], Client],
) -> None:
    other = make_flag("checkout.dependent")
    services.update_flag_state(
        flag, envs["production"], actor=None, reason="on", enabled=True,
        fallthrough={"variant": "on"},
    )  # fmt: skip
    services.update_flag_state(
        other, envs["production"], actor=None, reason="needs the flow", enabled=True,
        prerequisites=[{"flag": "checkout.new-flow", "variants": ["on"]}],
        fallthrough={"rollout": {"weights": [{"variant": "on", "weight": 3333},
                                             {"variant": "off", "weight": 6667}]}},
    )  # fmt: skip
    html = client_for(alice).get(f"{LIST}{other.pk}/change/").content.decode()
    card = _card(html, "production")
    assert "Only when checkout.new-flow is on" in card
    assert "Everyone: on 33.33% · off 66.67%" in card


def test_flag_page__cards__last_change_who_when_why(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    card = _card(client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode(), "staging")
    assert "by alice" in card and "“ramp to 10% for pros”" in card
    assert timezone.now().strftime("%Y-%m-%d") in card


def test_flag_page__cards__pending_request_linked_in_its_environment(
    flag: Flag,
    envs: dict[str, Environment],
    alice: User,
    client_for: Callable[[User], Client],
) -> None:
    prod = envs["production"]
    services.update_environment(prod, protected=True, actor=None, reason="lock")
    change = {"operation": "set_flag_enabled", "flag": flag.key, "environment": "production",
              "params": {"enabled": True, "expected_version": 1}}  # fmt: skip
    cr = crs.propose(change, author=alice, reason="launch")
    html = client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode()
    assert f'/admin/flagapp/changerequest/{cr.pk}/change/"' in html
    assert f"#{cr.pk} turn on by alice" in _card(html, "production")
    assert "none" in _card(html, "staging").split("Pending changes")[1][:20]


def test_flag_page__cards__evaluations_in_process_and_provider_usage_both_count(
    flag: Flag, alice: User, client_for: Callable[[User], Client], committed: Any
) -> None:
    """Last evaluated = the stale report's notion: in-process evaluations and the counts
    the provider reports (``kind: evaluation`` events, no context) fold into one figure."""
    reset_flag_cache()
    with committed():
        services.update_flag_state(
            flag, Environment.objects.get(key="staging"), actor=None, reason="publish",
            fallthrough={"variant": "on"},
        )  # fmt: skip
    for i in range(3):
        evaluate(flag.key, False, {"targetingKey": f"u{i}"}, environment="staging")
    sampling.flush()
    body = {"events": [{"kind": "evaluation", "flagKey": flag.key, "variant": "on",
                        "count": 37, "context": {}}]}  # fmt: skip
    events.store("staging", events.parse_batch(json.dumps(body).encode(), max_events=10))
    card = _card(client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode(), "staging")
    assert "40 evaluations · last evaluated just now" in card
    assert "never evaluated" in _card(
        client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode(), "production"
    )


def test_flag_page__ten_environments__same_queries_as_two(
    flag: Flag, alice: User, client_for: Callable[[User], Client], django_assert_num_queries: Any
) -> None:
    client = client_for(alice)
    url = f"{LIST}{flag.pk}/change/"
    client.get(url)  # session, content types: warm
    with CaptureQueriesContext(connection) as three:
        assert client.get(url).status_code == 200
    for i in range(7):
        env = services.create_environment(key=f"region-{i}", name=f"R{i}", actor=None, reason="s")
        services.update_flag_state(
            flag, env, actor=alice, reason=f"on in {i}", enabled=True, rules=[PRO_RULE]
        )
        ChangeRequest.objects.create(flag=flag, flag_key=flag.key, environment=env,
                                     environment_key=env.key, kind="set_flag_enabled",
                                     payload={"params": {"enabled": False}}, author=alice,
                                     reason="x")  # fmt: skip
        FlagEvaluationStat.objects.create(
            environment=env, flag_key=flag.key, count=5, last_evaluated_at=timezone.now()
        )
    with django_assert_num_queries(len(three.captured_queries)):
        html = client.get(url).content.decode()
    assert html.count('class="env-card"') == 10


# --- the toggle --------------------------------------------------------------------------------


def _toggle(flag: Flag, env: str) -> str:
    return f"{LIST}{flag.pk}/environments/{env}/toggle/"


def test_toggle__get__confirmation_page_asks_for_a_reason(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(alice).get(_toggle(flag, "staging"))
    text = _text(response.content.decode())
    assert response.status_code == 200
    assert "checkout.new-flow is on in Staging" in text
    assert 'name="reason"' in response.content.decode()
    assert FlagState.objects.get(flag=flag, environment__key="staging").enabled


def test_toggle__turn_on_page__shows_the_blast_radius_first(
    flag: Flag, envs: dict[str, Environment], alice: User, client_for: Callable[[User], Client]
) -> None:
    prod = envs["production"]
    client = client_for(alice)
    text = _text(client.get(_toggle(flag, "production") + "?enabled=1").content.decode())
    assert "Blast radius: unknown: no recent evaluation contexts sampled" in text
    with_publish = services.update_flag_state(
        flag, prod, actor=None, reason="serve on when enabled", fallthrough={"variant": "on"}
    )
    assert not with_publish.enabled
    ContextSample.objects.bulk_create(
        ContextSample(environment=prod, context={"targetingKey": f"u{i}"},
                      targeting_key=f"u{i}", recorded_at=timezone.now())
        for i in range(4)
    )  # fmt: skip
    text = _text(client.get(_toggle(flag, "production") + "?enabled=1").content.decode())
    assert "Blast radius: 4 of 4 recent contexts (100.0%) would be served a different" in text
    assert not FlagState.objects.get(flag=flag, environment=prod).enabled  # a dry run
    off_page = _text(client.get(_toggle(flag, "staging") + "?enabled=0").content.decode())
    assert "Blast radius" not in off_page  # the kill switch is not previewed


def test_toggle__post_off__turned_off_with_reason_in_history_and_back_to_next(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(alice).post(
        _toggle(flag, "staging"), {"enabled": "0", "reason": "500s on checkout", "next": LIST}
    )
    assert response.status_code == 302 and response["Location"] == LIST
    state = FlagState.objects.get(flag=flag, environment__key="staging")
    assert not state.enabled
    row = state.history.order_by("-history_id").first()
    assert row is not None
    assert (row.history_user, row.history_change_reason) == (alice, "500s on checkout")


def test_toggle__post_without_reason__refused_naming_the_field(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(alice).post(_toggle(flag, "staging"), {"enabled": "0", "reason": " "})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert FlagState.objects.get(flag=flag, environment__key="staging").enabled


def test_toggle__next_elsewhere__ignored_for_the_flag_page(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    response = client_for(alice).post(
        _toggle(flag, "staging"),
        {"enabled": "0", "reason": "r", "next": "https://evil.example/"},
    )
    assert response["Location"] == f"{LIST}{flag.pk}/change/"


def test_toggle__protected_turn_on__creates_change_request_and_says_so(
    flag: Flag,
    envs: dict[str, Environment],
    alice: User,
    client_for: Callable[[User], Client],
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    client = client_for(alice)
    response = client.post(
        _toggle(flag, "production"), {"enabled": "1", "reason": "launch"}, follow=True
    )
    cr = ChangeRequest.objects.get(flag=flag, status="pending")
    assert (cr.kind, cr.environment_key, cr.author) == ("update_flag_state", "production", alice)
    assert not FlagState.objects.get(flag=flag, environment__key="production").enabled
    text = _text(response.content.decode())
    assert f"Nothing was changed yet: production needs approval. Change request #{cr.pk}" in text
    assert f"#{cr.pk} turn on by alice" in text  # on the production card
    # a second identical proposal points at the first
    again = client.post(
        _toggle(flag, "production"), {"enabled": "1", "reason": "launch"}, follow=True
    )
    assert f"change request #{cr.pk}" in _text(again.content.decode())
    assert ChangeRequest.objects.filter(flag=flag).count() == 1


def test_toggle__protected_turn_off__kill_switch_applies_at_once(
    flag: Flag,
    envs: dict[str, Environment],
    alice: User,
    client_for: Callable[[User], Client],
) -> None:
    prod = envs["production"]
    services.update_flag_state(flag, prod, actor=None, reason="on", enabled=True,
                               change_request=GrantedApproval())  # fmt: skip
    services.update_environment(prod, protected=True, actor=None, reason="lock")
    client_for(alice).post(_toggle(flag, "production"), {"enabled": "0", "reason": "incident"})
    assert not FlagState.objects.get(flag=flag, environment=prod).enabled
    assert not ChangeRequest.objects.exists()


def test_toggle__without_change_permission_on_states__403(
    flag: Flag, client_for: Callable[[User], Client]
) -> None:
    viewer = h.user("viewer", perms=("flagapp.view_flag", "flagapp.view_flagstate"))
    client = client_for(viewer)
    assert client.get(_toggle(flag, "staging")).status_code == 403
    assert client.post(_toggle(flag, "staging"), {"enabled": "0", "reason": "r"}).status_code == 403
    assert FlagState.objects.get(flag=flag, environment__key="staging").enabled
    html = client.get(f"{LIST}{flag.pk}/change/").content.decode()
    assert 'class="flagapp-toggle' not in html and 'class="env-card"' in html


def test_toggle__protected_without_its_permission__refused_no_link(
    flag: Flag,
    envs: dict[str, Environment],
    client_for: Callable[[User], Client],
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    bob = h.user("bob", perms=STATE_PERMS)
    client = client_for(bob)
    html = client.get(f"{LIST}{flag.pk}/change/").content.decode()
    assert 'id="toggle-production-' not in html and 'id="toggle-staging-' in html
    response = client.post(_toggle(flag, "production"), {"enabled": "1", "reason": "r"})
    assert "You may not change production: it is protected." in _text(response.content.decode())
    assert not ChangeRequest.objects.exists()


def test_toggle__csrf__post_without_token_refused(flag: Flag, alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(_toggle(flag, "staging"), {"enabled": "0", "reason": "r"})
    assert response.status_code == 403
    assert FlagState.objects.get(flag=flag, environment__key="staging").enabled


def test_toggle__archived_flag__refused(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    services.archive_flag(flag, actor=None, reason="done")
    client = client_for(alice)
    page_html = client.get(_toggle(flag, "staging")).content.decode()
    assert "Archived flags cannot be changed" in page_html
    response = client.post(_toggle(flag, "staging"), {"enabled": "0", "reason": "r"})
    assert "Archived flags cannot be changed" in response.content.decode()
    assert FlagState.objects.get(flag=flag, environment__key="staging").enabled


def test_card_link__turn_off__points_at_the_toggle_with_next_the_flag_page(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    html = client_for(alice).get(f"{LIST}{flag.pk}/change/").content.decode()
    assert (
        f'href="{_toggle(flag, "staging")}?enabled=0&amp;next=%2Fadmin%2Fflagapp%2Fflag%2F'
        f'{flag.pk}%2Fchange%2F"' in html
    )
    assert "Turn off in staging…" in html and "Turn on in production…" in html


# --- the list ----------------------------------------------------------------------------------


def test_list__toggle_per_environment_and_last_evaluated(
    flag: Flag, alice: User, client_for: Callable[[User], Client]
) -> None:
    FlagEvaluationStat.objects.create(
        environment=Environment.objects.get(key="staging"), flag_key=flag.key, count=12,
        last_evaluated_at=timezone.now().replace(year=2026, month=11, day=30, hour=9, minute=5),
    )  # fmt: skip
    html = client_for(alice).get(LIST).content.decode()
    assert f'id="toggle-staging-{flag.pk}"' in html and "turn off…" in html
    assert f'id="toggle-production-{flag.pk}"' in html and "turn on…" in html
    assert "2026-11-30 09:05" in html and 'title="12 evaluations in all environments"' in html


def test_list__hundred_flags__same_queries_as_ten(
    make_flag: Callable[..., Flag],
    envs: dict[str, Environment],
    alice: User,
    client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            f = make_flag(f"bulk.flag-{i:03d}")
            services.update_flag_state(f, envs["staging"], actor=None, reason="s", enabled=True)
            FlagEvaluationStat.objects.create(
                environment=envs["staging"], flag_key=f.key, count=i,
                last_evaluated_at=timezone.now(),
            )  # fmt: skip

    add(10, 0)
    client = client_for(alice)
    client.get(LIST)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(LIST).status_code == 200
    add(90, 10)
    with django_assert_num_queries(len(ten.captured_queries)):
        html = client.get(LIST).content.decode()
    assert html.count("flagapp-toggle ") == 300


# --- the admin index ---------------------------------------------------------------------------


def test_admin_index__pending_count_linked_to_the_filtered_list(
    flag: Flag, envs: dict[str, Environment], alice: User, client_for: Callable[[User], Client]
) -> None:
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    for env, enabled in (("production", True),):
        crs.propose({"operation": "set_flag_enabled", "flag": flag.key, "environment": env,
                     "params": {"enabled": enabled, "expected_version": 1}},
                    author=alice, reason="launch")  # fmt: skip
    client = client_for(alice)
    for url in ("/admin/", "/admin/flagapp/"):
        html = client.get(url).content.decode()
        assert 'href="/admin/flagapp/changerequest/?status=pending"' in html
        assert "1 change request waiting for review" in _text(html)


def test_admin_index__user_who_cannot_see_requests__no_count(
    flag: Flag, client_for: Callable[[User], Client]
) -> None:
    viewer = h.user("viewer", perms=("flagapp.view_flag",))
    html = client_for(viewer).get("/admin/").content.decode()
    assert "flagapp-pending-count" not in html


def test_admin_index__nothing_pending__says_so(
    alice: User, client_for: Callable[[User], Client], db: Any
) -> None:
    assert "No change request waiting for review" in _text(
        client_for(alice).get("/admin/").content.decode()
    )
