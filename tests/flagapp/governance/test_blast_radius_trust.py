"""A blast-radius preview that an SDK key holder cannot rig (issue 10, item 6).

What was found: any SDK key may post exposures with made-up contexts, and the stored sample
was one per-environment queue: one POST of 1,000 crafted exposures pushed every real sample
out, and a "serve on to everyone" preview that affected 58 of 99 users showed 0 of 1,000.
Approvers would have seen a harmless change.

Now: the stored sample is bounded per source (one key cannot evict the server's own
samples), the preview deduplicates per targeting key (the server's own sample wins), caps
each SDK key's share (``BLAST_RADIUS_MAX_SOURCE_SHARE``), says where its sample came from,
and can be restricted to trusted sources (``BLAST_RADIUS_SOURCES``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db.models import Count
from django.test import Client, override_settings

from flagapp import sampling, services
from flagapp.governance import change_requests as crs
from flagapp.governance.blast_radius import BlastRadius
from flagapp.models import Environment, Flag, FlagState
from flagapp.policy import GrantedApproval
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from flagapp.testutils import reset_flag_cache
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db

PRO_RULE = {
    "id": "pro",
    "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
    "serve": {"variant": "on"},
}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    sampling.reset()
    keys.clear_cache()
    reset_flag_cache()
    yield
    sampling.reset()
    keys.clear_cache()
    reset_flag_cache()


@pytest.fixture
def prod(envs: dict[str, Environment]) -> Environment:
    return envs["production"]


@pytest.fixture
def flag(make_flag: Callable[..., Flag], prod: Environment) -> Flag:
    """off for everyone but plan=pro (on)."""
    f = h.production_baseline(make_flag("checkout.new-flow"), prod)
    services.update_flag_state(
        f,
        prod,
        actor=None,
        reason="pro rule",
        rules=[PRO_RULE],
        change_request=GrantedApproval(),
    )
    return f


def _in_process_users(n: int = 99) -> None:
    """n users evaluated by this server: 41 of 99 on the pro plan, 58 free."""
    with override_settings(FLAGAPP={"CONTEXT_SAMPLE_RATE": 1.0, "SAMPLING_FLUSH_SECONDS": 3600}):
        for i in range(n):
            plan = "pro" if i < 41 else "free"
            sampling.offer(
                "production", "checkout.new-flow", {"targetingKey": f"u{i}", "plan": plan}, "x"
            )
        sampling.flush()


def _rig(prod: Environment, contexts: list[dict[str, Any]]) -> str:
    """One POST of crafted exposures with an ordinary SDK key; returns its public id."""
    key, token = sdk_keys.create_sdk_key(prod, name="attacker", actor=None, reason="tests")
    body = {
        "events": [
            {"kind": "exposure", "flag": "checkout.new-flow", "variant": "on", "context": c}
            for c in contexts
        ]
    }
    response = Client().post(
        "/sdk/v1/events",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 202, response.content
    return key.public_id


def _preview(flag: Flag, prod: Environment) -> BlastRadius:
    state = FlagState.objects.get(flag=flag, environment=prod)
    radius = crs.preview(
        {
            "operation": "update_flag_state",
            "flag": flag.key,
            "environment": prod.key,
            "params": {"fallthrough": {"variant": "on"}, "expected_version": state.version},
        }
    )
    assert radius is not None
    return radius


CRAFTED = [{"targetingKey": f"x{i}", "plan": "pro"} for i in range(1000)]


def test_preview__honest_sample__58_of_99(flag: Flag, prod: Environment) -> None:
    _in_process_users()
    radius = _preview(flag, prod)
    assert (radius.changed, radius.sampled) == (58, 99)
    assert radius.sample["sources"] == {"in-process": 99}


def test_preview__1000_crafted_exposures_from_one_key__real_users_still_counted_key_capped(
    flag: Flag, prod: Environment
) -> None:
    _in_process_users()
    public_id = _rig(prod, CRAFTED)
    radius = _preview(flag, prod)
    # The key's share is capped at 20% of BLAST_RADIUS_SAMPLE (1,000): 200 contexts.
    assert radius.changed == 58
    assert radius.sampled == 99 + 200
    assert radius.sample["sources"] == {"in-process": 99, f"sdk:{public_id}": 200}
    assert f"sdk:{public_id}: 200" in radius.summary()


def test_preview__trusted_sources_only__crafted_exposures_ignored(
    flag: Flag, prod: Environment
) -> None:
    _in_process_users()
    _rig(prod, CRAFTED)
    with override_settings(FLAGAPP={"BLAST_RADIUS_SOURCES": ["in-process"]}):
        radius = _preview(flag, prod)
    assert (radius.changed, radius.sampled) == (58, 99)
    assert radius.sample["restricted_to"] == ["in-process"]


def test_preview__trusted_sdk_key_by_public_id__its_contexts_used(
    flag: Flag, prod: Environment
) -> None:
    public_id = _rig(prod, [{"targetingKey": f"m{i}", "plan": "free"} for i in range(10)])
    with override_settings(FLAGAPP={"BLAST_RADIUS_SOURCES": ["in-process", public_id]}):
        radius = _preview(flag, prod)
    assert (radius.changed, radius.sampled) == (10, 10)


def test_preview__crafted_contexts_reuse_real_targeting_keys__server_sample_wins(
    flag: Flag, prod: Environment
) -> None:
    _in_process_users()
    _rig(prod, [{"targetingKey": f"u{i}", "plan": "pro"} for i in range(99)])
    radius = _preview(flag, prod)
    assert (radius.changed, radius.sampled) == (58, 99)
    assert radius.sample["duplicates"] == 99


def test_preview__one_user_posted_1000_times__counted_once(flag: Flag, prod: Environment) -> None:
    _rig(prod, [{"targetingKey": "same", "plan": "free"}] * 1000)
    radius = _preview(flag, prod)
    assert (radius.changed, radius.sampled) == (1, 1)


def test_stored_sample__one_key_floods__in_process_samples_not_evicted(
    flag: Flag, prod: Environment
) -> None:
    _in_process_users()
    _rig(prod, CRAFTED)
    sources = dict(
        prod.context_samples.values("source").annotate(n=Count("id")).values_list("source", "n")
    )
    assert sources["in-process"] == 99
    assert sum(n for s, n in sources.items() if s != "in-process") == 200


def test_change_request_page__shows_sample_size_and_sources(
    flag: Flag, prod: Environment, admin_client: Client
) -> None:
    _in_process_users()
    public_id = _rig(prod, CRAFTED)
    state = FlagState.objects.get(flag=flag, environment=prod)
    author = h.user("carol", perms=("flagapp.change_flagstate",))
    cr = crs.propose(
        {
            "operation": "update_flag_state",
            "flag": flag.key,
            "environment": prod.key,
            "params": {"fallthrough": {"variant": "on"}, "expected_version": state.version},
        },
        author=author,
        reason="everyone on",
    )
    assert cr.blast_radius["sample"]["sources"] == {"in-process": 99, f"sdk:{public_id}": 200}
    page = admin_client.get(f"/admin/flagapp/changerequest/{cr.pk}/change/").content.decode()
    assert "in-process: 99" in page
    assert f"sdk:{public_id}: 200" in page
