"""Deltas on GET /sdk/v1/ruleset (docs/protocol.md, "Deltas"), through Django's test client.

Snapshots are stored as rows (what the publish chain stores) and installed into the
per-process cache, so a base is found the way a server finds it: in this process's digest
history, else among the stored snapshots.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from django.test import Client, override_settings

from flagapp import evaluation
from flagapp.documents import compute_etag
from flagapp.models import Snapshot
from flagapp.sdk import views
from openfeature_provider.engine import parse_ruleset
from openfeature_provider.engine.delta import apply_delta
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import bearer, flag_doc, ruleset_doc

pytestmark = pytest.mark.django_db

RULESET = "/sdk/v1/ruleset"
DELTA = {"HTTP_A_IM": "flagapp-delta"}


@pytest.fixture(autouse=True)
def no_delta_history() -> Iterator[None]:
    views.forget_deltas()
    yield
    views.forget_deltas()


def publish(environments: dict[str, Any], flags: Mapping[str, Any], version: int) -> dict[str, Any]:
    """Store ``flags`` as snapshot ``version`` of production and serve it in this process."""
    segments = {"pros": {"include": ["u-1"], "exclude": [], "when": []}}
    doc = ruleset_doc(flags, version=version)
    doc["segments"] = segments
    doc["etag"] = compute_etag(doc["flags"], segments)
    Snapshot.objects.create(
        environment=environments["production"],
        version=version,
        etag=doc["etag"],
        document=json.dumps(doc, separators=(",", ":")),
    )
    evaluation.install("production", parse_ruleset(doc))
    return doc


FLAGS = {f"f.{i}": flag_doc() for i in range(20)}


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def test_ruleset__delta_from_a_stored_base__226_with_only_what_changed(
    environments: dict[str, Any], sdk_token: str
) -> None:
    v1 = publish(environments, FLAGS, 1)
    changed = dict(FLAGS)
    changed["f.3"] = flag_doc(enabled=False)
    del changed["f.7"]
    changed["f.new"] = flag_doc()
    v2 = publish(environments, changed, 2)

    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
    )

    assert response.status_code == 226
    assert response["IM"] == "flagapp-delta"
    assert response["Delta-Base"] == _quoted(v1["etag"])
    assert response["ETag"] == _quoted(v2["etag"])
    assert response["Content-Type"] == "application/vnd.flagapp.delta+json"
    assert "A-IM" in response["Vary"]
    delta = json.loads(response.content)
    assert delta["base"] == {"version": 1, "etag": v1["etag"]}
    assert (delta["version"], delta["etag"]) == (2, v2["etag"])
    assert set(delta["flags"]) == {"f.3", "f.new"}
    assert delta["removedFlags"] == ["f.7"]
    assert delta["segments"] == {}
    assert delta["removedSegments"] == []
    assert delta["counts"] == {"flags": 20, "segments": 1}
    assert parse_ruleset(apply_delta(v1, delta)) == parse_ruleset(v2)


def test_ruleset__delta_base_unknown__200_full_document(
    environments: dict[str, Any], sdk_token: str
) -> None:
    v1 = publish(environments, FLAGS, 1)
    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH='"sha256:never-published"', **DELTA, **bearer(sdk_token)
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["flags"] == v1["flags"]


def test_ruleset__delta_base_pruned_from_history_and_store__200_full_document(
    environments: dict[str, Any], sdk_token: str
) -> None:
    v1 = publish(environments, FLAGS, 1)
    publish(environments, {**FLAGS, "f.0": flag_doc(enabled=False)}, 2)
    Snapshot.objects.filter(version=1).delete()  # older than SNAPSHOT_KEEP
    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
    )
    assert response.status_code == 200
    assert json.loads(response.content)["version"] == 2


def test_ruleset__delta_base_is_current__304(environments: dict[str, Any], sdk_token: str) -> None:
    v1 = publish(environments, FLAGS, 1)
    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
    )
    assert response.status_code == 304


def test_ruleset__delta_not_smaller_than_the_document__200_full_document(
    environments: dict[str, Any], sdk_token: str
) -> None:
    v1 = publish(environments, {"a": flag_doc()}, 1)
    publish(environments, {"b": flag_doc(enabled=False)}, 2)
    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
    )
    assert response.status_code == 200


def test_ruleset__delta_with_accept_gzip__gzipped_delta(
    environments: dict[str, Any], sdk_token: str
) -> None:
    v1 = publish(environments, FLAGS, 1)
    publish(environments, {**FLAGS, "f.0": flag_doc(enabled=False)}, 2)
    response = Client().get(
        RULESET,
        HTTP_IF_NONE_MATCH=_quoted(v1["etag"]),
        HTTP_ACCEPT_ENCODING="gzip",
        **DELTA,
        **bearer(sdk_token),
    )
    assert response.status_code == 226
    assert response["Content-Encoding"] == "gzip"
    assert set(json.loads(gzip.decompress(response.content))["flags"]) == {"f.0"}


def test_ruleset__old_style_request_with_an_old_etag__exactly_the_full_answer(
    environments: dict[str, Any], sdk_token: str
) -> None:
    """A provider from before deltas (no A-IM) gets today's answer, header for header."""
    v1 = publish(environments, FLAGS, 1)
    v2 = publish(environments, {**FLAGS, "f.0": flag_doc(enabled=False)}, 2)
    client = Client()
    # a delta computed for another client first must not leak into the old-style answer
    assert (
        client.get(
            RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
        ).status_code
        == 226
    )

    response = client.get(RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **bearer(sdk_token))

    assert response.status_code == 200
    assert json.loads(response.content) == v2
    security = {  # Django's middleware, on every answer
        "Cross-Origin-Opener-Policy",
        "Referrer-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
    }
    assert {k: v for k, v in response.items() if k not in security | {"Content-Length"}} == {
        "Content-Type": "application/json",
        "ETag": _quoted(v2["etag"]),
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, X-API-Key, Accept-Encoding",
        "X-Flagapp-Version": "2",
    }


@pytest.mark.parametrize("a_im", ["vcdiff", "", "flagapp-delta-v9"])
def test_ruleset__a_im_without_flagapp_delta__full_document(
    environments: dict[str, Any], sdk_token: str, a_im: str
) -> None:
    v1 = publish(environments, FLAGS, 1)
    publish(environments, {**FLAGS, "f.0": flag_doc(enabled=False)}, 2)
    response = Client().get(
        RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), HTTP_A_IM=a_im, **bearer(sdk_token)
    )
    assert response.status_code == 200


def test_ruleset__delta_base_seen_in_this_process__no_database_query(
    environments: dict[str, Any],
    sdk_token: str,
    django_assert_max_num_queries: Any,
) -> None:
    v1 = publish(environments, FLAGS, 1)
    client = Client()
    client.get(RULESET, **bearer(sdk_token))  # warm: key lookup cached
    # a delta request while v1 is current records v1's digests (its base is unknown: 200)
    unknown = client.get(RULESET, HTTP_IF_NONE_MATCH='"sha256:x"', **DELTA, **bearer(sdk_token))
    assert unknown.status_code == 200
    publish(environments, {**FLAGS, "f.0": flag_doc(enabled=False)}, 2)
    client.get(RULESET, **bearer(sdk_token))
    with django_assert_max_num_queries(0):
        response = client.get(
            RULESET, HTTP_IF_NONE_MATCH=_quoted(v1["etag"]), **DELTA, **bearer(sdk_token)
        )
    assert response.status_code == 226


@override_settings(FLAGAPP={"DELTA_HISTORY": 1})
def test_delta_history__bounded__older_bases_read_from_the_store(
    environments: dict[str, Any], sdk_token: str
) -> None:
    docs = [publish(environments, FLAGS, 1)]
    for i in range(1, 4):
        docs.append(publish(environments, {**FLAGS, f"f.{i}": flag_doc(enabled=False)}, 1 + i))
    client = Client()
    for doc in docs[:-1]:
        response = client.get(
            RULESET, HTTP_IF_NONE_MATCH=_quoted(doc["etag"]), **DELTA, **bearer(sdk_token)
        )
        assert response.status_code == 226
        assert parse_ruleset(apply_delta(doc, json.loads(response.content))) == parse_ruleset(
            docs[-1]
        )
    from flagapp import publishing

    assert max(len(h) for h in publishing._history.values()) == 1


# --- random edit sequences: the delta applied equals the full document -------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flagapp import publishing  # noqa: E402
from openfeature_provider.engine import Ruleset, evaluate  # noqa: E402

_SEGMENT_RULE = {
    "id": "seg",
    "when": [{"op": "in_segment", "values": ["s0"]}],
    "serve": {"variant": "on"},
}


def _flag(choice: tuple[bool, int, bool, int]) -> dict[str, Any]:
    enabled, fallthrough, segment_rule, version = choice
    # 1 and 1.0 and True are equal in Python, not in JSON: a delta must still carry the change
    variants = [{"on": True, "off": False}, {"on": 1, "off": 0}, {"on": 1.0, "off": 0.0}]
    return flag_doc(
        "boolean" if fallthrough == 0 else "integer" if fallthrough == 1 else "float",
        variants[fallthrough],
        enabled=enabled,
        fallthrough="on" if version % 2 else "off",
        rules=[_SEGMENT_RULE] if segment_rule else None,
        metadata_version=version,
    )


_flags = st.dictionaries(
    st.sampled_from([f"f{i}" for i in range(12)]),
    st.tuples(st.booleans(), st.integers(0, 2), st.booleans(), st.integers(1, 3)).map(_flag),
    max_size=12,
)
_segments = st.dictionaries(
    st.sampled_from(["s1", "s2", "s3"]),
    st.lists(st.sampled_from(["u1", "u2", "u3"]), unique=True).map(
        lambda inc: {"include": inc, "exclude": [], "when": []}
    ),
)


def _document(version: int, flags: dict[str, Any], segments: dict[str, Any]) -> dict[str, Any]:
    segments = {"s0": {"include": ["u1"], "exclude": [], "when": []}, **segments}
    doc = ruleset_doc(flags, segments=segments, version=version)
    doc["etag"] = compute_etag(flags, segments)
    return doc


def _answers(rs: Ruleset) -> dict[str, Any]:
    return {
        key: (r.value, r.variant, r.reason, r.rule_id)
        for key in rs.flags
        for ctx in ({"targetingKey": "u1"}, {"targetingKey": "u9"})
        for r in [evaluate(rs, key, ctx)]
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(_flags, _segments), min_size=2, max_size=6))
def test_delta__random_edit_sequence__applied_equals_the_full_document(
    environments: dict[str, Any], steps: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    publishing.forget_deltas()
    docs = [_document(1 + i, flags, segments) for i, (flags, segments) in enumerate(steps)]
    held = parse_ruleset(docs[0])
    held_doc = docs[0]
    # docs[0] is served: the server records it as a base (its own base is unknown here)
    assert publishing.delta_from("production", "sha256:?", held_doc, build=held.build) is None
    for doc in docs[1:]:
        full = parse_ruleset(doc)
        if doc["etag"] == held_doc["etag"]:
            continue  # same content: the server answers 304, there is no delta
        delta = publishing.delta_from("production", held_doc["etag"], doc, build=full.build)
        assert delta is not None  # the base was a current document of this process
        applied_doc = apply_delta(held_doc, json.loads(json.dumps(delta)))
        applied = parse_ruleset(applied_doc, previous=held)
        assert applied == full
        assert applied_doc == doc
        assert _answers(applied) == _answers(full)
        held, held_doc = applied, applied_doc


# --- the publisher's delta travels with the announcement -----------------------------------

from flagapp.sdk import notifier  # noqa: E402


@pytest.mark.parametrize(
    ("announced", "carries_delta"),
    [((2, "sha256:v2"), True), ((2, "sha256:other"), False), ((1, "sha256:v2"), False)],
)
def test_notifier_message__delta_kept_only_for_the_confirmed_version(
    announced: tuple[int, str], carries_delta: bool
) -> None:
    """A Redis message is a hint: its delta reaches the streams only when the store confirms
    exactly the version and etag it announced (``_confirm`` is the store's answer)."""
    confirmed = notifier.Announcement(environment="production", version=2, etag="sha256:v2")
    message = {
        "type": "snapshot",
        "environment": "production",
        "version": announced[0],
        "etag": announced[1],
        "base": "sha256:v1",
        "delta": '{"delta":1}',
    }
    result = notifier._with_delta(confirmed, message)
    assert (result.version, result.etag) == (2, "sha256:v2")
    assert (result.delta is not None) is carries_delta


def test_publish_through_the_chain__announcement_carries_the_delta(
    environments: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.contrib.auth.models import Group

    from flagapp import services

    sent: list[notifier.Announcement] = []
    monkeypatch.setattr(notifier, "publish", sent.append)
    env = environments["production"]
    owner = Group.objects.create(name="web")
    with django_capture_on_commit_callbacks(execute=True):
        flag = services.create_flag(
            key="web.a", name="A", owner=owner, actor=None, reason="t", flag_type="ops"
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.set_flag_enabled(flag, env, True, actor=None, reason="on")
    ann = sent[-1]
    assert ann.delta is not None and ann.base is not None
    delta = json.loads(ann.delta)
    assert delta["base"]["etag"] == ann.base
    assert list(delta["flags"]) == ["web.a"]
    assert delta["etag"] == ann.etag


def test_notifier_message_with_delta__other_process__takes_the_version_from_the_delta(
    environments: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that hears a confirmed announcement with the publisher's delta installs the
    new version from it at once (no expire, no later load and parse of the whole document)."""
    from flagapp import evaluation
    from openfeature_provider.engine.delta import make_delta

    def doc(version: int, enabled: bool) -> dict[str, Any]:
        return {
            "format": 1,
            "environment": "production",
            "version": version,
            "etag": f"sha256:v{version}",
            "flags": {"a.flag": flag_doc(enabled=enabled), "b.flag": flag_doc()},
            "segments": {},
        }

    held = parse_ruleset(doc(1, True))
    evaluation.install("production", held)
    # the store's answer (in a server, the listener thread's own query of the snapshots)
    monkeypatch.setattr(
        notifier,
        "_confirm",
        lambda env, version: notifier.Announcement(environment=env, version=2, etag="sha256:v2"),
    )
    delivered: list[notifier.Announcement] = []
    monkeypatch.setattr(notifier, "_deliver", delivered.append)
    expired: list[Any] = []
    monkeypatch.setattr(evaluation, "expire", lambda env=None: expired.append(env))
    from flagapp import assembly

    followed: list[tuple[str, int]] = []
    monkeypatch.setattr(
        assembly, "follow", lambda env, delta: followed.append((env, delta["version"])) or True
    )
    notifier._handle(
        json.dumps(
            {
                "type": "snapshot",
                "origin": "another-process",
                "environment": "production",
                "version": 2,
                "etag": "sha256:v2",
                "base": "sha256:v1",
                "delta": json.dumps(make_delta(doc(1, True), doc(2, False))),
            }
        )
    )
    current = evaluation.current_ruleset("production")
    assert current is not None and current.version == 2
    assert current.flags["a.flag"].enabled is False
    assert expired == []
    assert [a.version for a in delivered] == [2]
    assert followed == [("production", 2)]  # the publish assembly here moves along too


def test_publish_in_any_process__listener_started(
    environments: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A process that publishes (a Celery worker, the admin) starts the notifier listener,
    so it follows other processes' publishes and its own next publish stays incremental."""
    from django.contrib.auth.models import Group

    from flagapp import services

    started: list[bool] = []
    monkeypatch.setattr(notifier, "ensure_listener", lambda wait=0.0: started.append(True))
    monkeypatch.setattr(notifier, "publish", lambda ann: None)
    with django_capture_on_commit_callbacks(execute=True):
        services.create_flag(
            key="team.flag", name="f", owner=Group.objects.create(name="o"), flag_type="ops",
            actor=None, reason="t",
        )  # fmt: skip
    assert started
