"""One optimistic-concurrency rule for every versioned resource (issue 12 part 1).

Flags, segments and environments carry a ``version`` column, as flag states do: it starts
at 1, moves on every write and never on an identical one. A write naming a stale
``expected_version`` is refused with ``VersionConflict`` naming the resource, nothing
written -- unless it asks for exactly what is stored (the retry of a write that committed),
which succeeds with the current version. The admin, the API and governance all go through
this one rule in the services.
"""

from __future__ import annotations

from typing import Any

import pytest

from flagapp import services
from flagapp.exceptions import VersionConflict
from flagapp.models import Environment, Flag, Segment

pytestmark = pytest.mark.django_db


def _segment() -> Segment:
    return services.create_segment(
        key="beta", name="Beta", include=["u1"], actor=None, reason="test setup"
    )


def test_create__flag_segment_environment__start_at_version_1(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    assert make_flag().version == 1
    assert _segment().version == 1
    assert envs["production"].version == 1


def test_update_flag__change__bumps_version_identical_write_does_not(make_flag: Any) -> None:
    flag = make_flag()
    services.update_flag(flag, name="Renamed", actor=None, reason="r", expected_version=1)
    assert Flag.objects.get(pk=flag.pk).version == 2
    services.update_flag(flag, name="Renamed", actor=None, reason="r", expected_version=2)
    assert Flag.objects.get(pk=flag.pk).version == 2


def test_update_flag__stale_version__conflict_names_the_flag_nothing_written(
    make_flag: Any,
) -> None:
    flag = make_flag()
    services.update_flag(flag, name="First", actor=None, reason="r", expected_version=1)
    with pytest.raises(VersionConflict) as info:
        services.update_flag(flag, name="Second", actor=None, reason="r", expected_version=1)
    assert info.value.current_version == 2
    assert "flag checkout.new-flow" in str(info.value)
    assert Flag.objects.get(pk=flag.pk).name == "First"


def test_update_flag__stale_retry_of_committed_write__succeeds_idempotently(
    make_flag: Any,
) -> None:
    flag = make_flag()
    services.update_flag(flag, name="First", actor=None, reason="r", expected_version=1)
    again = services.update_flag(flag, name="First", actor=None, reason="r", expected_version=1)
    assert again.version == 2


def test_set_variants__change__bumps_flag_version(make_flag: Any) -> None:
    flag = make_flag()
    services.set_variants(
        flag, {"on": True, "off": False, "maybe": True}, actor=None, reason="r", expected_version=1
    )
    assert Flag.objects.get(pk=flag.pk).version == 2
    with pytest.raises(VersionConflict):
        services.set_variants(
            flag, {"on": True, "off": False}, actor=None, reason="r", expected_version=1
        )


def test_archive_flag__stale_version__conflict(make_flag: Any) -> None:
    flag = make_flag()
    services.update_flag(flag, name="First", actor=None, reason="r")
    with pytest.raises(VersionConflict):
        services.archive_flag(flag, actor=None, reason="r", expected_version=1)
    services.archive_flag(flag, actor=None, reason="r", expected_version=2)
    assert Flag.objects.get(pk=flag.pk).version == 3


def test_delete_flag__stale_version__conflict_flag_kept(make_flag: Any) -> None:
    flag = make_flag()
    services.update_flag(flag, name="First", actor=None, reason="r")
    with pytest.raises(VersionConflict):
        services.delete_flag(flag, actor=None, reason="r", expected_version=1)
    assert Flag.objects.filter(pk=flag.pk).exists()


def test_update_segment__stale_version__conflict_names_the_segment(envs: Any) -> None:
    segment = _segment()
    services.update_segment(segment, name="B2", actor=None, reason="r", expected_version=1)
    assert Segment.objects.get(pk=segment.pk).version == 2
    with pytest.raises(VersionConflict) as info:
        services.update_segment(segment, name="B3", actor=None, reason="r", expected_version=1)
    assert "segment beta" in str(info.value)
    # the retry of the committed write is not a conflict
    services.update_segment(segment, name="B2", actor=None, reason="r", expected_version=1)


def test_delete_segment__stale_version__conflict_segment_kept(envs: Any) -> None:
    segment = _segment()
    services.update_segment(segment, name="B2", actor=None, reason="r")
    with pytest.raises(VersionConflict):
        services.delete_segment(segment, actor=None, reason="r", expected_version=1)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_update_environment__stale_version__conflict_names_the_environment(
    envs: dict[str, Environment],
) -> None:
    env = envs["staging"]
    services.update_environment(env, name="Stage", actor=None, reason="r", expected_version=1)
    assert Environment.objects.get(pk=env.pk).version == 2
    with pytest.raises(VersionConflict) as info:
        services.update_environment(env, order=9, actor=None, reason="r", expected_version=1)
    assert "environment staging" in str(info.value)
    assert Environment.objects.get(pk=env.pk).order != 9


def test_update_flag_state__stale_version__conflict_names_flag_and_environment(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    services.set_flag_enabled(flag, envs["staging"], True, actor=None, reason="r")
    with pytest.raises(VersionConflict) as info:
        services.update_flag_state(
            flag, envs["staging"], enabled=False, actor=None, reason="r", expected_version=1
        )
    assert "checkout.new-flow in staging" in str(info.value)
