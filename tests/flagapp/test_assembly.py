"""The incremental publish (flagapp.assembly): a change re-reads what it touched, and what
it publishes equals a full compile of the database, byte for byte.

Issue 17 item 1: a publish read every flag of the environment and re-encoded the whole
document for any change (2.2 s at 10,000 flags for one kill switch).
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from django.db import connection, transaction

from flagapp import assembly, documents, publishing, services
from flagapp.documents import compile_entries, compile_environment
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag, FlagState, PublishOutbox, Segment, Snapshot
from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.delta import apply_delta

pytestmark = pytest.mark.django_db

Committed = Callable[[], AbstractContextManager[Any]]


def _latest(env: Environment) -> Snapshot:
    snapshot = Snapshot.objects.filter(environment=env).order_by("-version").first()
    assert snapshot is not None
    return snapshot


def _full_text(env: Environment, version: int) -> str:
    flags, segments = compile_entries(env)
    return assembly.Assembly.full(env.key, flags, segments).text(version)


def _assert_published_is_the_truth(env: Environment) -> Snapshot:
    """The stored snapshot equals a full compile of what the database holds now."""
    snapshot = _latest(env)
    truth = compile_environment(env, version=snapshot.version)
    assert snapshot.etag == truth["etag"]
    assert json.loads(snapshot.document) == truth
    assert snapshot.document == _full_text(env, snapshot.version)  # byte for byte
    assert snapshot.document == json.dumps(truth, separators=(",", ":"), ensure_ascii=False)
    return snapshot


@contextmanager
def _rows_read() -> Iterator[list[tuple[str, int]]]:
    """Every SELECT run inside, with the number of rows it returned (counted by running it
    again as ``SELECT COUNT(*) FROM (...)`` with the same parameters)."""
    seen: list[tuple[str, Any]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in sql.upper():
            seen.append((sql, params))
        return execute(sql, params, many, context)

    out: list[tuple[str, int]] = []
    with connection.execute_wrapper(wrapper):
        yield out
    with connection.cursor() as cursor:
        for sql, params in seen:
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS counted", params)
            out.append((sql, int(cursor.fetchone()[0])))


def _environment_with_flags(
    n: int, owner_group: Any, committed: Committed
) -> tuple[Environment, Flag]:
    env = services.create_environment(key="production", name="P", actor=None, reason="t")
    with committed():
        services.create_segment(key="beta", name="Beta", include=["u1"], actor=None, reason="t")
    flags = Flag.objects.bulk_create(
        [Flag(key=f"f{i:04d}", name=f"f{i}", kind="boolean", owner=owner_group) for i in range(n)]
    )
    for flag in flags:
        flag.variants.create(key="on", value=True, order=0)
        flag.variants.create(key="off", value=False, order=1)
    FlagState.objects.bulk_create(
        [
            FlagState(flag=f, environment=env, enabled=True, fallthrough={"variant": "on"})
            for f in flags
        ]
    )
    with committed():  # a full compile: the assembly this process holds from now on
        publishing.publish(env)
    return env, flags[0]


def _one_change_reads(n: int, owner_group: Any, committed: Committed) -> list[tuple[str, int]]:
    env, flag = _environment_with_flags(n, owner_group, committed)
    before = _latest(env).version
    enabled = False
    with _rows_read() as reads, committed():
        services.set_flag_enabled(flag, env, enabled, actor=None, reason="kill")
    assert _latest(env).version == before + 1
    _assert_published_is_the_truth(env)
    return reads


def test_publish__one_flag_changed__rows_read_do_not_grow_with_the_flags(
    owner_group: Any, committed: Committed
) -> None:
    small = _one_change_reads(10, owner_group, committed)
    Snapshot.objects.all().delete()
    Environment.objects.all().delete()
    Flag.objects.all().delete()
    Segment.objects.all().delete()
    assembly.forget()
    large = _one_change_reads(120, owner_group, committed)
    assert len(large) == len(small)  # the same queries ...
    assert sum(rows for _sql, rows in large) == sum(rows for _sql, rows in small)  # ... rows
    assert max(rows for _sql, rows in large) <= 5


def test_publish__random_edit_sequences__equal_a_full_compile_byte_for_byte(
    owner_group: Any, committed: Committed
) -> None:
    """Every kind of service write, in random order, each published incrementally: after
    each one the stored document is the full compile's (text and etag), and the delta the
    publisher announced leads from the previous document to the new one."""
    env = services.create_environment(key="production", name="P", actor=None, reason="t")
    other = services.create_environment(key="staging", name="S", actor=None, reason="t")
    announced: list[dict[str, Any]] = []

    def on_published(sender: Any, delta: Any = None, environment_key: str = "", **kw: Any) -> None:
        if environment_key == "production":
            announced.append({"delta": delta, "version": kw["snapshot"].version})

    from flagapp.signals import snapshot_published

    snapshot_published.connect(on_published, dispatch_uid="test_assembly")
    try:
        rng = random.Random(17)
        with committed():
            for i in range(4):
                services.create_segment(
                    key=f"seg{i}", name=f"s{i}", include=[f"u{i}"], actor=None, reason="t"
                )
            for i in range(6):
                services.create_flag(
                    key=f"team.flag-{i}",
                    name=f"f{i}",
                    owner=owner_group,
                    flag_type="ops",
                    actor=None,
                    reason="t",
                )
        with committed():
            publishing.publish(env)
        _assert_published_is_the_truth(env)
        counter = [100]

        def new_key(prefix: str) -> str:
            counter[0] += 1
            return f"{prefix}{counter[0]}"

        def live_flags() -> list[Flag]:
            return list(Flag.objects.filter(archived=False).order_by("key"))

        def step() -> None:
            flags = live_flags()
            flag = rng.choice(flags) if flags else None
            segments = list(Segment.objects.order_by("key"))
            op = rng.choice(
                [
                    "toggle", "toggle", "rules", "rules", "create", "archive", "unarchive",
                    "delete", "variants", "meta", "seg_update", "seg_create", "seg_delete",
                    "other_env",
                ]
            )  # fmt: skip
            if op == "create" or flag is None:
                services.create_flag(
                    key="team." + new_key("new"),
                    name="n",
                    owner=owner_group,
                    flag_type="ops",
                    actor=None,
                    reason="t",
                )
            elif op == "toggle":
                state = FlagState.objects.get(flag=flag, environment=env)
                services.set_flag_enabled(flag, env, not state.enabled, actor=None, reason="t")
            elif op == "rules" and segments:
                seg = rng.choice(segments)
                services.update_flag_state(
                    flag,
                    env,
                    actor=None,
                    reason="t",
                    rules=[
                        {
                            "id": "r",
                            "when": [{"op": "in_segment", "values": [seg.key]}],
                            "serve": {"variant": rng.choice(["on", "off"])},
                        }
                    ],
                )
            elif op == "archive":
                services.archive_flag(flag, actor=None, reason="t")
            elif op == "unarchive":
                archived = list(Flag.objects.filter(archived=True))
                if archived:
                    services.unarchive_flag(rng.choice(archived), actor=None, reason="t")
            elif op == "delete":
                with contextlib.suppress(FlagValidationError):  # in use: refused
                    services.delete_flag(flag, actor=None, reason="t")
            elif op == "variants":
                services.set_variants(
                    flag,
                    [
                        {"key": "on", "value": True},
                        {"key": "off", "value": False},
                        *([{"key": "extra", "value": True}] if rng.random() < 0.5 else []),
                    ],
                    actor=None,
                    reason="t",
                )
            elif op == "meta":
                services.update_flag(
                    flag, actor=None, reason="t", risk=rng.choice(["low", "medium"])
                )
            elif op == "seg_update" and segments:
                seg = rng.choice(segments)
                services.update_segment(
                    seg, actor=None, reason="t", include=[f"u{rng.randrange(50)}"]
                )
            elif op == "seg_create":
                services.create_segment(
                    key=new_key("seg"), name="s", include=["x"], actor=None, reason="t"
                )
            elif op == "seg_delete" and segments:
                with contextlib.suppress(FlagValidationError):  # in use: refused
                    services.delete_segment(rng.choice(segments), actor=None, reason="t")
            elif flag is not None:  # other_env: a change elsewhere publishes nothing here
                services.set_flag_enabled(flag, other, True, actor=None, reason="t")

        for _ in range(60):
            before = _latest(env)
            with committed():
                step()
            after = _assert_published_is_the_truth(env)
            served = documents._served["production"]  # what the publish parsed (a delta)
            assert served.version == after.version
            full = parse_ruleset(after.document)
            assert set(served.flags) == set(full.flags)
            for key in full.flags:  # compiled the same: every flag evaluates the same
                for ctx in ({"targetingKey": "u1"}, {"targetingKey": "u3", "plan": "x"}):
                    assert evaluate(served, key, ctx) == evaluate(full, key, ctx), key
            if after.version != before.version:
                assert announced, "a new version is announced"
                delta = announced[-1]["delta"]
                assert delta is not None, "the publisher knew what changed"
                assert apply_delta(json.loads(before.document), json.loads(delta)) == (
                    json.loads(after.document)
                )
        assert len(announced) > 20  # most steps published a new version
    finally:
        snapshot_published.disconnect(dispatch_uid="test_assembly")


def test_publish__outbox_row_not_noted_here__compiles_in_full(
    make_flag: Any, envs: dict[str, Any], committed: Committed
) -> None:
    """A row written by another process (or a writer that did not say what it touched) says
    nothing about what changed: the publish reads everything, so a change made without the
    services meanwhile is published too."""
    env = envs["production"]
    with committed():
        flag = make_flag("a.flag")
        make_flag("b.flag")
    FlagState.objects.filter(flag__key="b.flag", environment=env).update(enabled=True)
    PublishOutbox.objects.create(environment=env)  # as another process would
    with committed():
        services.set_flag_enabled(flag, env, True, actor=None, reason="t")
    document = json.loads(_latest(env).document)
    assert document["flags"]["b.flag"]["enabled"] is True
    _assert_published_is_the_truth(env)


def test_publish__another_process_published_meanwhile__compiles_in_full(
    make_flag: Any, envs: dict[str, Any], committed: Committed
) -> None:
    """The assembly held here is bound to the snapshot it was published as; a newer one
    stored by someone else (whose content this process never saw) means a full compile."""
    env = envs["production"]
    with committed():
        flag = make_flag("a.flag")
        make_flag("b.flag")
    held = _latest(env)
    FlagState.objects.filter(flag__key="b.flag", environment=env).update(enabled=True)
    truth = compile_environment(env, version=held.version + 1)
    Snapshot.objects.create(  # another process's publish of the direct change
        environment=env, version=held.version + 1, etag=truth["etag"], document=json.dumps(truth)
    )
    with committed():
        services.set_flag_enabled(flag, env, True, actor=None, reason="t")
    document = json.loads(_latest(env).document)
    assert document["flags"]["a.flag"]["enabled"] is True
    assert document["flags"]["b.flag"]["enabled"] is True
    _assert_published_is_the_truth(env)


def test_record__write_rolled_back__leaves_no_note(
    make_flag: Any, envs: dict[str, Any], committed: Committed
) -> None:
    """What a write touched is noted only once it commits: a rolled-back write's row id may
    be reused (SQLite) by a row that says nothing, which must then compile in full."""
    with committed():
        make_flag("a.flag")
    env = envs["production"]
    flag = Flag.objects.get(key="a.flag")
    with committed(), pytest.raises(RuntimeError), transaction.atomic():
        services.set_flag_enabled(flag, env, True, actor=None, reason="t")
        row_ids = list(PublishOutbox.objects.values_list("pk", flat=True))
        raise RuntimeError("roll back")
    assert row_ids
    assert assembly.touched_by("default", row_ids) is None


def test_record__keys_given__noted_after_commit(
    make_flag: Any, envs: dict[str, Any], committed: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    with committed():
        make_flag("a.flag")
    monkeypatch.setattr(publishing, "_after_commit", lambda ids, using: None)  # not drained
    flag = Flag.objects.get(key="a.flag")
    with committed():
        services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="t")
    rows = list(PublishOutbox.objects.values_list("pk", flat=True))
    assert assembly.touched_by("default", rows) == assembly.Touched(
        frozenset({"a.flag"}), frozenset()
    )


def test_publish__one_flag_changed__engine_parses_the_delta_only(
    make_flag: Any, envs: dict[str, Any], committed: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish hands the engine the changed entries (parse_delta from the last served
    ruleset): no parse of the whole document, whose cost grows with the environment."""
    import openfeature_provider.engine.ruleset as engine_ruleset

    env = envs["production"]
    with committed():
        flag = make_flag("a.flag")
        make_flag("b.flag")
    whole: list[int] = []
    real = engine_ruleset._parse

    def counting(doc: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(doc, dict) and doc.get("environment") == "production" and doc["version"]:
            whole.append(len(doc.get("flags") or {}))
        return real(doc, *args, **kwargs)

    monkeypatch.setattr(engine_ruleset, "_parse", counting)
    with committed():
        services.set_flag_enabled(flag, env, True, actor=None, reason="t")
    assert whole == []
    served = documents._served["production"]
    assert served.version == _latest(env).version
    assert served.flags["a.flag"].enabled is True


def test_publish__another_process_published_and_announced__stays_incremental(
    make_flag: Any, envs: dict[str, Any], committed: Committed
) -> None:
    """The announcement of another process's publish carries its delta; the assembly held
    here follows it (flagapp.sdk.notifier -> assembly.follow), so the next publish here still
    re-reads only what it touched — and still equals a full compile."""
    from openfeature_provider.engine.delta import make_delta

    env = envs["production"]
    with committed():
        flag = make_flag("a.flag")
        for i in range(30):
            make_flag(f"more.flag-{i}")
    held = _latest(env)
    FlagState.objects.filter(flag__key="more.flag-3", environment=env).update(enabled=True)
    truth = compile_environment(env, version=held.version + 1)
    Snapshot.objects.create(  # the other process's publish ...
        environment=env, version=held.version + 1, etag=truth["etag"], document=json.dumps(truth)
    )
    # ... and its announcement, heard here
    assert assembly.follow("production", make_delta(json.loads(held.document), truth))
    with _rows_read() as reads, committed():
        services.set_flag_enabled(flag, env, True, actor=None, reason="t")
    document = json.loads(_assert_published_is_the_truth(env).document)
    assert document["flags"]["a.flag"]["enabled"] is True
    assert document["flags"]["more.flag-3"]["enabled"] is True
    assert max(rows for _sql, rows in reads) <= 5  # not the 31 flags of a full compile


def test_follow__delta_from_another_base__nothing_moves(
    make_flag: Any, envs: dict[str, Any], committed: Committed
) -> None:
    env = envs["production"]
    with committed():
        make_flag("a.flag")
    held = _latest(env)
    delta = {"base": {"version": held.version - 1, "etag": "sha256:older"}, "version": 9,
             "etag": "sha256:x", "flags": {}, "segments": {}}  # fmt: skip
    assert assembly.follow("production", delta) is False
    assert assembly.bound("default", env.pk, held.version, held.etag) is not None
