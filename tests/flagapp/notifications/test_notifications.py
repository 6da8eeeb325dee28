"""Webhook, Slack and email notifications against a real HTTP receiver on loopback.

The receiver (tests/flagapp/webhook_receiver.py) is a threaded ``http.server``: requests
really cross a socket, 500s and timeouts are real answers, and the signature is checked on
the receiving side with the snippet published in docs/observability.md (extracted from the
page and executed), so the documentation cannot drift from what is sent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from flagapp import services
from flagapp.governance import change_requests as crs
from flagapp.models import (
    DeliveryAttempt,
    Environment,
    NotificationDelivery,
    NotificationEvent,
    WebhookEndpoint,
)
from flagapp.notifications import delivery as deliveries
from flagapp.notifications import signing
from flagapp.notifications.dispatcher import dispatch
from tests.flagapp import governance_helpers as h
from tests.flagapp.webhook_receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parents[3]
Committed = Callable[[], AbstractContextManager[Any]]


def _doc_verifier() -> Callable[..., bool]:
    """``verify_flagapp_signature`` exactly as docs/observability.md prints it."""
    text = (ROOT / "docs" / "observability.md").read_text()
    marker = text.index("<!-- verification-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code is not None, "the verification snippet is missing from the docs"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/observability.md", "exec"), namespace)
    return namespace["verify_flagapp_signature"]  # type: ignore[no-any-return]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def _endpoint(receiver: Receiver, path: str = "/hook", **kw: Any) -> WebhookEndpoint:
    environments = kw.pop("environments", [])
    endpoint = WebhookEndpoint.objects.create(
        name=kw.pop("name", path.strip("/")), url=receiver.url + path, **kw
    )
    endpoint.environments.set(environments)
    return endpoint


def _toggle(flag: Any, env: Environment, committed: Committed, *, enabled: bool = True) -> None:
    with committed():
        services.update_flag_state(flag, env, enabled=enabled, actor=None, reason="launch it")


def _bodies(receiver: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests(path)]


# ---------------------------------------------------------------------------------------
# signing


def test_signature__doc_snippet_and_verify__accept_signed_reject_tampered_and_old() -> None:
    body = b'{"type":"flag.changed"}'
    header = signing.signature_header("whsec_test", body)
    doc_verify = _doc_verifier()
    assert doc_verify("whsec_test", header, body)
    assert not doc_verify("whsec_test", header, body + b" ")
    assert not doc_verify("other-secret", header, body)
    old = signing.signature_header("whsec_test", body, timestamp=1_000_000_000)
    assert not doc_verify("whsec_test", old, body)
    assert signing.verify("whsec_test", header, body) > 0
    for bad_secret, bad_header, bad_body in (
        ("whsec_test", header, body + b"x"),
        ("whsec_test", old, body),
        ("whsec_test", "v1=abc", body),
    ):
        with pytest.raises(signing.SignatureError):
            signing.verify(bad_secret, bad_header, bad_body)


# ---------------------------------------------------------------------------------------
# dispatch: who gets what


def test_flag_state_change__subscribed_endpoint__one_signed_request_verified_by_receiver(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    endpoint = _endpoint(receiver, event_types=["flag.changed"])
    _toggle(flag, envs["production"], committed)
    [request] = receiver.requests("/hook")
    assert _doc_verifier()(endpoint.secret, request.headers["flagapp-signature"], request.body)
    body = json.loads(request.body)
    assert body["type"] == "flag.changed" == request.headers["flagapp-event"]
    assert body["id"] == request.headers["flagapp-event-id"]
    assert body["environments"] == ["production"]
    data = body["data"]
    assert data["flag"]["key"] == "checkout.new-flow"
    assert data["flag"]["owner"] == "payments"
    assert data["operation"] == "update_flag_state"
    assert data["changes"] == {"enabled": True}
    assert data["reason"] == "launch it"
    row = NotificationDelivery.objects.get()
    assert (row.status, row.attempts, row.last_response_code) == ("succeeded", 1, 200)
    assert row.endpoint == endpoint and row.next_attempt_at is None


def test_dispatch__type_environment_and_active_filters__only_subscribed_endpoints_called(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    _endpoint(receiver, "/all")
    _endpoint(receiver, "/prod", environments=[envs["production"]])
    _endpoint(receiver, "/staging", environments=[envs["staging"]])
    _endpoint(receiver, "/rollouts-only", event_types=["rollout.rolled_back"])
    _endpoint(receiver, "/inactive", active=False)
    flag = make_flag("checkout.new-flow")  # created without committed(): no event
    _toggle(flag, envs["production"], committed)
    _toggle(flag, envs["staging"], committed)
    with committed():  # not environment-specific: every endpoint subscribed to the type
        services.update_flag(flag, name="New checkout", actor=None, reason="rename")
    seen = {
        path: [b["data"]["operation"] for b in _bodies(receiver, path)]
        for path in ("/all", "/prod", "/staging", "/rollouts-only", "/inactive")
    }
    assert seen == {
        "/all": ["update_flag_state", "update_flag_state", "update_flag"],
        "/prod": ["update_flag_state", "update_flag"],
        "/staging": ["update_flag_state", "update_flag"],
        "/rollouts-only": [],
        "/inactive": [],
    }
    assert _bodies(receiver, "/prod")[0]["environments"] == ["production"]
    assert _bodies(receiver, "/all")[2]["data"]["changes"] == {"name": "New checkout"}


def test_dispatch__no_endpoint_and_no_email__nothing_stored(
    make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")
    _toggle(flag, envs["production"], committed)
    assert not NotificationEvent.objects.exists()


def test_change_request_lifecycle__proposed_approved_applied_rejected__one_event_each(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    prod = envs["production"]
    services.update_environment(prod, protected=True, actor=None, reason="lock production")
    flag = h.production_baseline(make_flag("checkout.new-flow"), prod)
    alice = h.user(
        "alice",
        perms=("flagapp.change_flagstate", "flagapp.change_protected_environment"),
    )
    bob = h.user("bob", perms=("flagapp.approve_changerequest",))
    _endpoint(receiver, event_types=[t for t in _types() if t.startswith("change_request.")])

    def propose(reason: str) -> Any:
        from flagapp.exceptions import ApprovalRequired

        state = flag.states.get(environment=prod)
        with pytest.raises(ApprovalRequired) as info:
            services.update_flag_state(
                flag, prod, actor=alice, reason=reason, expected_version=state.version,
                rules=[{"id": "pro", "when": [{"attr": "plan", "op": "eq", "values": [reason]}],
                        "serve": {"variant": "on"}}],
            )  # fmt: skip
        with committed():
            return crs.propose_from(info.value, author=alice, reason=reason)

    first = propose("pro users first")
    with committed():
        crs.approve(first, reviewer=bob, comment="ok")
    second = propose("pro users again")
    with committed():
        crs.reject(second, reviewer=bob, comment="not now")
    events = [(b["type"], b["data"]["change_request"]["id"]) for b in _bodies(receiver)]
    assert events == [
        ("change_request.proposed", first.pk),
        ("change_request.approved", first.pk),
        ("change_request.applied", first.pk),
        ("change_request.proposed", second.pk),
        ("change_request.rejected", second.pk),
    ]
    rejected = _bodies(receiver)[-1]["data"]
    assert rejected["actor"] == "bob" and rejected["change_request"]["author"] == "alice"
    assert rejected["change_request"]["review_comment"] == "not now"
    assert rejected["change_request"]["environment"] == "production"


def _types() -> list[str]:
    from flagapp.notifications import EVENT_TYPES

    return list(EVENT_TYPES)


def test_rollout_rollback__webhook_slack_and_owner_email__one_delivery_each(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    from flagapp.rollouts import controller

    env = envs["production"]
    flag = make_flag("checkout.new-flow")
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="serve off")
    User.objects.create(username="owner", email="owner@example.com").groups.add(flag.owner)
    _endpoint(receiver, "/hook", event_types=["rollout.started", "rollout.rolled_back"])
    _endpoint(receiver, "/slack", kind="slack", event_types=["rollout.rolled_back"])
    plan = controller.create_plan(
        flag, env, treatment="on", control="off", guardrails=[], min_step_seconds=600,
        actor=None,
    )  # fmt: skip
    with committed():
        plan = controller.start(plan, actor=None, reason="go")
        controller.rollback(plan, actor=None, reason="checkout errors up", automatic=True)
    hooks = _bodies(receiver, "/hook")
    assert [b["type"] for b in hooks] == ["rollout.started", "rollout.rolled_back"]
    back = hooks[1]["data"]
    assert back["rollout"]["flag"] == "checkout.new-flow"
    assert (back["action"], back["automatic"], back["to_percent"]) == ("rollback", True, 0)
    assert back["reason"] == "checkout errors up"
    [slack] = _bodies(receiver, "/slack")
    assert set(slack) == {"text", "blocks"}
    assert "checkout.new-flow" in slack["text"] and "automatically rolled back" in slack["text"]
    assert slack["blocks"][0]["text"]["text"] == slack["text"]
    [message] = mail.outbox
    assert message.to == ["owner@example.com"]
    assert "automatically rolled back" in message.subject
    assert "checkout errors up" in message.body
    event = NotificationEvent.objects.get(event_type="rollout.rolled_back")
    assert sorted(d.channel for d in event.deliveries.all()) == ["email", "slack", "webhook"]


def test_expiry_and_stale__webhook_subscribers__flag_expiring_and_flag_stale_events(
    receiver: Receiver, db: None, django_capture_on_commit_callbacks: Any
) -> None:
    from flagapp.governance.reminders import send_expiry_reminders
    from flagapp.governance.stale import mail_stale_report, stale_report

    team = Group.objects.create(name="search")  # nobody with an email: webhook only
    _endpoint(receiver, event_types=["flag.expiring", "flag.stale"])
    today = dt.date(2026, 6, 1)
    h.flag("search.fuzzy.v2", team, expires_on=today, created_days_ago=40)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_expiry_reminders(today).sent == [("search.fuzzy.v2", "due")]
        assert mail_stale_report(stale_report(days=30)) == 0
    expiring, stale = _bodies(receiver)
    assert expiring["type"] == "flag.expiring"
    assert expiring["data"]["stage"] == "due"
    assert expiring["data"]["label"] == "expires today (2026-06-01)"
    assert expiring["data"]["flag"]["expires_on"] == "2026-06-01"
    assert stale["type"] == "flag.stale"
    assert stale["data"]["not_evaluated"] == {"search.fuzzy.v2": None}
    assert mail.outbox == []


# ---------------------------------------------------------------------------------------
# delivery: retries, timeouts, bounds, exactly once


def test_delivery__receiver_answers_500_twice__retried_with_backoff_then_succeeds(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    endpoint = _endpoint(receiver)
    receiver.then("/hook", 500, 503)
    _toggle(flag, envs["production"], committed)
    row = NotificationDelivery.objects.get()
    assert (row.status, row.attempts, row.last_response_code) == ("pending", 1, 500)
    first_due = row.next_attempt_at
    assert first_due is not None
    # not due yet: the sweep leaves it alone
    assert deliveries.deliver_due(now=first_due - dt.timedelta(seconds=1))["due"] == 0
    assert deliveries.deliver_due(now=first_due)["retrying"] == 1
    row.refresh_from_db()
    assert row.last_response_code == 503
    assert row.next_attempt_at == first_due + dt.timedelta(seconds=60)  # 30 s, then 60 s
    assert deliveries.deliver_due(now=row.next_attempt_at)["succeeded"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_response_code) == ("succeeded", 3, 200)
    codes = list(row.attempt_log.values_list("number", "response_code", "error"))
    assert codes == [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, "")]
    requests = receiver.requests("/hook")
    assert len(requests) == 3
    assert len({r.headers["flagapp-event-id"] for r in requests}) == 1  # same event
    for r in requests:  # each attempt signed afresh, each verifiable
        assert _doc_verifier()(endpoint.secret, r.headers["flagapp-signature"], r.body)


def test_delivery__receiver_sleeps_past_read_timeout__timeout_logged_and_retried(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    _endpoint(receiver)
    receiver.then("/hook", ("sleep", 3.0))
    with override_settings(FLAGAPP={"WEBHOOK_READ_TIMEOUT": 0.3}):
        _toggle(flag, envs["production"], committed)
    row = NotificationDelivery.objects.get()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_response_code is None
    assert row.last_error.startswith("ReadTimeout")
    assert row.next_attempt_at is not None
    assert deliveries.deliver_due(now=row.next_attempt_at)["succeeded"] == 1
    assert len(receiver.requests("/hook")) == 2


def test_delivery__receiver_unreachable_until_max_attempts__failed_then_replay_delivers(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    _endpoint(receiver)
    receiver.then("/hook", 500, 500, 500)
    with override_settings(FLAGAPP={"WEBHOOK_MAX_ATTEMPTS": 3}):
        _toggle(flag, envs["production"], committed)
        for day in range(1, 5):
            deliveries.deliver_due(now=timezone.now() + dt.timedelta(days=day))
    row = NotificationDelivery.objects.get()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert len(receiver.requests("/hook")) == 3
    with committed():
        assert deliveries.replay([row]) == [row.pk]
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("succeeded", 1)
    assert row.attempt_log.count() == 4
    assert len(receiver.requests("/hook")) == 4


def test_delivery__after_success__never_sent_again(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    _endpoint(receiver, "/a")
    _endpoint(receiver, "/b")
    for enabled in (True, False, True):
        _toggle(flag, envs["production"], committed, enabled=enabled)
    later = timezone.now() + dt.timedelta(days=1)
    assert deliveries.deliver_due(now=later)["due"] == 0
    for row in NotificationDelivery.objects.all():
        assert deliveries.attempt(row.pk, now=later).status == "skipped"
    for path in ("/a", "/b"):
        ids = [r.headers["flagapp-event-id"] for r in receiver.requests(path)]
        assert len(ids) == 3 and len(set(ids)) == 3  # one request per event per endpoint
    assert NotificationEvent.objects.count() == 3
    assert NotificationDelivery.objects.count() == 6


def test_dispatch__same_event_recorded_twice_for_an_endpoint__refused_by_constraint(
    receiver: Receiver, db: None
) -> None:
    from django.db import IntegrityError, transaction

    endpoint = _endpoint(receiver)
    event = dispatch("flag.stale", {"days": 30, "not_evaluated": {}, "ready_to_remove": {}})
    assert event is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationDelivery.objects.create(event=event, endpoint=endpoint, channel="webhook")


def test_delivery__huge_response_body__read_bounded(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    _endpoint(receiver)
    receiver.then("/hook", ("body", b"x" * 2_000_000))
    flag = make_flag("checkout.new-flow")
    with override_settings(FLAGAPP={"WEBHOOK_RESPONSE_MAX_BYTES": 1000}):
        _toggle(flag, envs["production"], committed)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.succeeded and attempt.response_code == 200
    assert attempt.response_excerpt == "x" * 1000


def test_delivery__redirect__not_followed_and_counted_as_failure(
    receiver: Receiver, make_flag: Callable[..., Any], envs: dict[str, Any], committed: Committed
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    _endpoint(receiver)
    receiver.then("/hook", 302)
    _toggle(flag, envs["production"], committed)
    row = NotificationDelivery.objects.get()
    assert (row.status, row.last_response_code) == ("pending", 302)


def test_delivery__failure_logged__secret_and_slack_url_never_in_logs_or_rows(
    make_flag: Callable[..., Any],
    envs: dict[str, Any],
    committed: Committed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Slack hook URL carries its own credential: a refused connection must not log it.
    url = "http://127.0.0.1:9/services/T000/B000/XXXXsecretpath"
    flag = make_flag("checkout.new-flow")  # before the endpoints (outbox)
    endpoint = WebhookEndpoint.objects.create(name="team-slack", kind="slack", url=url)
    with caplog.at_level(logging.DEBUG):
        _toggle(flag, envs["production"], committed)
        with running_receiver() as receiver:  # and a successful post (httpx logs URLs)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                url=receiver.url + "/services/T000/B000/XXXXsecretpath"
            )
            _toggle(flag, envs["production"], committed, enabled=False)
            assert len(receiver.requests()) == 1
    row = NotificationDelivery.objects.earliest("pk")
    assert row.status == "pending" and row.last_error
    stored = " ".join([row.last_error, *row.attempt_log.values_list("error", flat=True)])
    for text in (caplog.text, stored, repr(endpoint), str(endpoint)):
        assert endpoint.secret not in text
        assert "XXXXsecretpath" not in text


def test_prune__old_settled_and_old_pending_events__only_settled_deleted(
    receiver: Receiver, db: None
) -> None:
    _endpoint(receiver)
    data = {"days": 30, "not_evaluated": {}, "ready_to_remove": {}}
    pending = dispatch("flag.stale", data)  # still to be retried
    settled = dispatch("flag.stale", data)
    recent = dispatch("flag.stale", data)
    assert pending is not None and settled is not None and recent is not None
    NotificationDelivery.objects.filter(event=settled).update(status="succeeded")
    row = NotificationDelivery.objects.get(event=settled)
    DeliveryAttempt.objects.create(delivery=row, number=1, started_at=timezone.now())
    old = timezone.now() - dt.timedelta(days=31)
    NotificationEvent.objects.filter(pk__in=[pending.pk, settled.pk]).update(created_at=old)
    assert NotificationDelivery.objects.get(event=pending).status == "pending"
    assert deliveries.prune() == 1
    left = set(NotificationEvent.objects.values_list("pk", flat=True))
    assert left == {pending.pk, recent.pk}
    assert not DeliveryAttempt.objects.filter(delivery__event_id=settled.pk).exists()
    with override_settings(FLAGAPP={"NOTIFICATION_KEEP_DAYS": None}):
        NotificationDelivery.objects.update(status="succeeded")
        assert deliveries.prune() == 0


def test_enqueue__broker_configured__one_message_per_delivery_naming_the_registered_task() -> None:
    """With a broker, deliveries are queued by task *name* (importing the task object would
    close the delivery <-> tasks import cycle): the name must be the registered task's, or
    every message would sit in the queue with no worker able to run it. Real Celery and
    kombu on kombu's in-memory transport; no worker needed to read the queued messages."""
    from celery import Celery, current_app

    import flagapp.tasks  # noqa: F401 - registers the shared tasks

    previous = current_app._get_current_object()
    app = Celery("flagapp-enqueue-test", broker="memory://", set_as_current=True)
    try:
        with override_settings(CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER=False):
            assert deliveries.uses_broker()
            deliveries.enqueue([41, 42])
        with app.connection_for_read() as conn:
            queue = conn.SimpleQueue(app.conf.task_default_queue)
            messages = [queue.get(timeout=1) for _ in range(2)]
            queue.close()
    finally:
        previous.set_current()
    assert [m.headers["task"] for m in messages] == [deliveries.DELIVER_TASK] * 2
    assert [m.headers["argsrepr"] for m in messages] == ["(41,)", "(42,)"]
    assert deliveries.DELIVER_TASK in app.tasks
