"""The segment page's usage list (issue 13): paged, and only the rows shown are decoded —
a segment every one of 10,000 flags uses must not cost a decode of every rule."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import JSONField
from django.test import Client
from django.test.utils import CaptureQueriesContext

from flagapp import services
from flagapp.admin import resources
from flagapp.models import Environment, Segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def beta(make_flag: Any, envs: dict[str, Environment]) -> Any:
    segment = services.create_segment(
        key="beta", name="Beta", include=["u1"], actor=None, reason="x"
    )
    services.create_segment(
        key="nested", name="N", actor=None, reason="x",
        conditions=[{"op": "in_segment", "values": ["beta"]}],
    )  # fmt: skip
    return segment


def _flags_using(make_flag: Any, env: Environment, start: int, stop: int) -> None:
    for i in range(start, stop):
        flag = make_flag(f"f.{i:03d}")
        services.update_flag_state(
            flag, env, actor=None, reason="x",
            rules=[{"id": "r", "when": [{"op": "in_segment",
                                         "values": ["nested" if i % 2 else "beta"]}],
                    "serve": {"variant": "on"}}],
        )  # fmt: skip


def _url(segment: Segment, page: int | None = None) -> str:
    return f"/admin/flagapp/segment/{segment.pk}/change/" + (f"?usage={page}" if page else "")


def test_segment_page__more_rules_than_a_page__paged_with_total_and_links(
    admin_client: Client, beta: Segment, make_flag: Any, envs: dict[str, Environment],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(resources, "USAGE_ROWS", 4)
    _flags_using(make_flag, envs["staging"], 0, 10)
    first = admin_client.get(_url(beta)).content.decode()
    assert "10 rule(s) of 10 flag(s) in 1 environment(s)" in first
    assert "Rules 1\u20134 of 10" in first
    assert all(f"f.{i:03d}" in first for i in range(4))
    assert "f.004" not in first
    assert f'href="{_url(beta, 2)}"' in first.replace("&amp;", "&")
    third = admin_client.get(_url(beta, 3)).content.decode()
    assert "Rules 9\u201310 of 10" in third
    assert "f.008" in third and "f.009" in third and "f.007" not in third
    assert f'href="{_url(beta, 2)}"' in third  # previous
    beyond = admin_client.get(_url(beta, 99)).content.decode()
    assert "Rules 9\u201310 of 10" in beyond  # a page past the end shows the last one


def test_segment_page__many_flags__queries_do_not_grow_and_serve_decoded_for_shown_rows_only(
    admin_client: Client, beta: Segment, make_flag: Any, envs: dict[str, Environment],
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any,
) -> None:  # fmt: skip
    monkeypatch.setattr(resources, "USAGE_ROWS", 4)
    _flags_using(make_flag, envs["staging"], 0, 6)
    admin_client.get(_url(beta))  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(_url(beta))
    _flags_using(make_flag, envs["staging"], 6, 40)
    decoded: list[str] = []
    from_db_value = JSONField.from_db_value

    def counting(self: JSONField, value: Any, expression: Any, connection: Any) -> Any:
        if self.model is not None and self.model.__name__ == "TargetingRule":
            decoded.append(self.name)
        return from_db_value(self, value, expression, connection)

    monkeypatch.setattr(JSONField, "from_db_value", counting)
    with django_assert_num_queries(len(few.captured_queries)):
        page = admin_client.get(_url(beta))
    assert "40 rule(s) of 40 flag(s)" in page.content.decode()
    # membership needs every candidate rule's conditions (once each); what is served, only
    # for the four rules shown
    assert decoded.count("serve") == 4, decoded
    assert decoded.count("conditions") <= 40, decoded
