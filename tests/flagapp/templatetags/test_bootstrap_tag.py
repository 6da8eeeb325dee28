"""``{% flagapp_bootstrap %}`` (issue 15, part 3): the request's evaluated flags as JSON in a
``<script type="application/json">``, exactly what OFREP answers a client-side key for the
same context -- values, not rules -- escaped so no value can end the element."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.template import Context, Template
from django.test import Client, RequestFactory

from flagapp.evaluation.context import context_for_request
from flagapp.services import sdk_keys
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)

EVIL = '</script><script>alert("x")</script><!--'
FLAGS = {
    "ui.on": flag_doc(),
    "ui.evil": flag_doc("string", {"x": EVIL, "y": "plain"}, fallthrough="x"),
    "ui.beta": flag_doc(
        rules=[
            {
                "id": "beta",
                "when": [{"op": "in_segment", "values": ["insiders"]}],
                "serve": {"variant": "on"},
            }
        ],
        fallthrough="off",
    ),
    "ui.off": flag_doc(enabled=False),
}
SEGMENTS = {"insiders": {"include": ["member-secret-7"], "exclude": [], "when": []}}


def _render(source: str, request: Any) -> str:
    return Template("{% load flagapp %}" + source).render(Context({"request": request}))


def _parsed(output: str, element_id: str = "flagapp-bootstrap") -> Any:
    match = re.fullmatch(
        rf'<script id="{element_id}" type="application/json">(.*)</script>', output, re.S
    )
    assert match is not None, output
    return json.loads(match.group(1))


def _request(user: Any = None) -> Any:
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    return request


@pytest.fixture
def published(install_flags: Installer) -> None:
    install_flags(FLAGS, segments=SEGMENTS, version=7)


def test_flagapp_bootstrap__flags__equal_to_the_client_keys_ofrep_bulk_answer(
    published: None, db: Any
) -> None:
    from flagapp.models import Environment

    user = User.objects.create(username="member-secret-7")
    request = _request(user)
    rendered = _parsed(_render("{% flagapp_bootstrap %}", request))
    env = Environment.objects.create(key="production", name="P")
    _key, token = sdk_keys.create_sdk_key(env, scope="client", actor=None, reason="tests")
    answer = (
        Client()
        .post(
            "/ofrep/v1/evaluate/flags",
            json.dumps({"context": dict(context_for_request(request))}),
            "application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        .json()
    )
    answer.pop("eventStreams")
    assert rendered == answer
    assert rendered["metadata"] == {"snapshotVersion": 7}


def test_flagapp_bootstrap__segment_rule__member_list_and_rules_not_rendered(
    published: None, db: Any
) -> None:
    output = _render("{% flagapp_bootstrap %}", _request())
    assert "member-secret-7" not in output and "insiders" not in output
    beta = next(f for f in _parsed(output)["flags"] if f["key"] == "ui.beta")
    assert beta == {"key": "ui.beta", "reason": "UNKNOWN", "variant": "off", "value": False,
                    "metadata": beta["metadata"]}  # fmt: skip
    assert "rules" not in output and "when" not in output


def test_flagapp_bootstrap__value_with_script_end__escaped_and_round_trips(
    published: None,
) -> None:
    output = _render('{% flagapp_bootstrap "boot" %}', _request())
    assert output.count("</script>") == 1 and output.count("<") == 2  # open and close tags
    assert "<!--" not in output
    evil = next(f for f in _parsed(output, "boot")["flags"] if f["key"] == "ui.evil")
    assert evil["value"] == EVIL


def test_flagapp_bootstrap__nothing_published__empty_flags(db: Any) -> None:
    assert _parsed(_render("{% flagapp_bootstrap %}", _request())) == {"flags": []}
