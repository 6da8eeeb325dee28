"""Where a segment is used (issue 13 part 6): the rules naming it directly or through the
segments that name it, and governance following the same walk."""

from __future__ import annotations

from typing import Any

import pytest

from flagapp import services
from flagapp.exceptions import ApprovalRequired
from flagapp.models import Environment

pytestmark = pytest.mark.django_db


def _in(segment: str) -> list[dict[str, Any]]:
    return [{"op": "in_segment", "values": [segment]}]


@pytest.fixture
def chain(make_flag: Any, envs: dict[str, Environment]) -> dict[str, Any]:
    """beta <- testers (names beta) <- staff (names testers); flag A's production rule names
    staff, flag B's staging rule names beta, flag C names nothing."""
    beta = services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="x")
    services.create_segment(key="testers", name="T", conditions=_in("beta"), actor=None, reason="x")
    services.create_segment(
        key="staff", name="S", conditions=_in("testers"), actor=None, reason="x"
    )
    a, b, c = make_flag("a.flag"), make_flag("b.flag"), make_flag("c.flag")
    services.update_flag_state(
        a, envs["production"], actor=None, reason="x",
        rules=[{"id": "staff", "when": _in("staff"), "serve": {"variant": "on"}}],
    )  # fmt: skip
    services.update_flag_state(
        b, envs["staging"], actor=None, reason="x",
        rules=[{"id": "b1", "when": [{"attr": "beta", "op": "eq", "values": ["beta"]}],
                "serve": {"variant": "off"}},
               {"id": "b2", "when": _in("beta"), "serve": {"variant": "on"}}],
    )  # fmt: skip
    services.update_flag_state(
        c, envs["staging"], actor=None, reason="x",
        rules=[{"id": "c1", "when": [{"attr": "plan", "op": "eq", "values": ["beta"]}],
                "serve": {"variant": "on"}}],
    )  # fmt: skip
    return {"beta": beta}


def test_segment_usage__nested_segments__rules_through_other_segments_listed(
    chain: dict[str, Any],
) -> None:
    usage = services.segment_usage("beta")
    assert [(u.label, u.via) for u in usage.rules] == [
        ("a.flag@production#staff", ("staff",)),
        ("b.flag@staging#b2", ()),
    ]
    assert usage.segments == ["testers"]
    assert usage.reaching == ["staff", "testers"]


def test_segment_usage__unused_segment__nothing(chain: dict[str, Any]) -> None:
    usage = services.segment_usage("staff")
    assert [u.label for u in usage.rules] == ["a.flag@production#staff"]
    assert usage.segments == [] and usage.reaching == []


def test_update_segment__used_through_another_segment_in_protected_env__needs_approval(
    chain: dict[str, Any], envs: dict[str, Environment]
) -> None:
    # beta's audience is staff's audience, which a production rule serves: growing beta
    # changes production as surely as a direct reference would.
    services.update_environment(envs["production"], protected=True, actor=None, reason="lock")
    with pytest.raises(ApprovalRequired):
        services.update_segment(chain["beta"], include=["u1", "u2"], actor=None, reason="grow")


def test_segment_admin_page__nested_use__lists_flags_environments_rules_and_segments(
    chain: dict[str, Any], admin_client: Any
) -> None:
    page = admin_client.get(f"/admin/flagapp/segment/{chain['beta'].pk}/change/")
    html = page.content.decode()
    assert "Where it is used" in html
    assert "2 rule(s) of 2 flag(s) in 2 environment(s)" in html
    for text in ("a.flag", "b.flag", "production", "staging", "testers", "staff"):
        assert text in html, text
    assert "c.flag" not in html  # its rule only mentions the word "beta"
    assert "in_segment staff → on" in html  # the rule in words
    assert "approval needed" not in html  # production is not protected here
