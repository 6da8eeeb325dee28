"""Issue 13 part 7, blast radius on the flag page: only the environments a change touches
count, a user is counted (and shown) once, and re-enabling a boolean flag whose fallthrough
is ``off`` moves nobody (``off`` is what the caller's ``false`` default served)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from flagapp import services
from flagapp.governance import change_requests as crs
from flagapp.governance.blast_radius import compare
from flagapp.models import ContextSample, Environment, Flag
from tests.flagapp.governance.test_blast_radius import CONTEXTS, _bool_flag, _doc


def test_compare__boolean_flag_reenabled_serving_off__nobody_changed() -> None:
    before = _doc({"checkout.new-flow": _bool_flag(enabled=False)})
    after = copy.deepcopy(before)
    after["flags"]["checkout.new-flow"]["enabled"] = True
    assert compare(before, after, "checkout.new-flow", CONTEXTS).changed == 0
    after["flags"]["checkout.new-flow"]["fallthrough"] = {"variant": "on"}
    assert compare(before, after, "checkout.new-flow", CONTEXTS).changed == 100


def test_compare__same_targeting_key_twice__one_user() -> None:
    before = _doc({"checkout.new-flow": _bool_flag()})
    after = _doc({"checkout.new-flow": _bool_flag(fallthrough={"variant": "on"})})
    contexts = [
        {"targetingKey": "u1"},
        {"targetingKey": "u1", "plan": "pro"},
        {"targetingKey": "u2"},
    ]
    radius = compare(before, after, "checkout.new-flow", contexts)
    assert (radius.sampled, radius.changed) == (2, 2)
    assert [e["targetingKey"] for e in radius.examples] == ["u1", "u2"]


def _sample(env: Environment, users: range) -> None:
    ContextSample.objects.bulk_create(
        ContextSample(
            environment=env,
            context={"targetingKey": f"u{i}"},
            targeting_key=f"u{i}",
            recorded_at=timezone.now(),
        )
        for i in users
    )


@pytest.fixture
def published(make_flag: Callable[..., Flag], envs: dict[str, Environment], committed: Any) -> Flag:
    with committed():
        flag = make_flag()
        for key in ("staging", "production"):
            services.update_flag_state(
                flag,
                envs[key],
                actor=None,
                reason="on",
                enabled=True,
                fallthrough={"variant": "off"},
            )
    return flag


def test_radius_since_published__one_environment_changed__share_of_that_environment(
    published: Flag, envs: dict[str, Environment]
) -> None:
    _sample(envs["staging"], range(4))
    _sample(envs["production"], range(10, 14))
    services.update_flag_state(
        published, envs["production"], actor=None, reason="all in", fallthrough={"variant": "on"}
    )
    radius = crs.radius_since_published(published)
    assert radius is not None
    assert (radius.sampled, radius.changed) == (4, 4)  # was 4 of 8: 50%
    assert radius.share == 1.0
    assert radius.sample["environments"] == ["production"]


def test_radius_since_published__same_users_in_two_changed_environments__counted_once(
    published: Flag, envs: dict[str, Environment]
) -> None:
    _sample(envs["staging"], range(3))
    _sample(envs["production"], range(3))
    for key in ("staging", "production"):
        services.update_flag_state(
            published, envs[key], actor=None, reason="all in", fallthrough={"variant": "on"}
        )
    radius = crs.radius_since_published(published)
    assert radius is not None
    assert (radius.sampled, radius.changed) == (3, 3)  # was 6 "contexts" for 3 users
    keys = [e["targetingKey"] for e in radius.examples]
    assert sorted(keys) == ["u0", "u1", "u2"]
