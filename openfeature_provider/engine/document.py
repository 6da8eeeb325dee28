"""A format-v1 document from a parsed ruleset: ``ruleset_document``.

Why: a provider does not keep the decoded document it parsed (``parse_ruleset(...,
keep_raw=False)``: about a third of a ruleset's memory), yet its last-known-good file must be
a document. This one is rebuilt from the validated objects, entry by entry when the file is
written; parsing it gives an equal ruleset (same flags, segments and evaluations;
tests/openfeature_provider/engine/test_document.py). Defaults are written out (a rollout's
``bucket_by`` and ``hash``), a segment's include/exclude lists are sorted, and a float
flag's integral variants are written as the floats they are served as.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .types import Condition, Flag, Ruleset, Segment, Serve

__all__ = ["flag_entry", "ruleset_document", "segment_entry"]


def ruleset_document(ruleset: Ruleset) -> dict[str, Any]:
    """``ruleset.raw`` when it was kept, else the equivalent document rebuilt."""
    if ruleset.raw:
        return dict(ruleset.raw)
    return {
        "format": ruleset.format,
        "environment": ruleset.environment,
        "version": ruleset.version,
        "etag": ruleset.etag,
        "flags": {key: flag_entry(flag) for key, flag in ruleset.flags.items()},
        "segments": {key: segment_entry(seg) for key, seg in ruleset.segments.items()},
    }


def flag_entry(flag: Flag) -> dict[str, Any]:
    """The document entry of one flag."""
    entry: dict[str, Any] = {
        "kind": flag.kind,
        "enabled": flag.enabled,
        "variants": dict(flag.variants),
    }
    if flag.prerequisites:
        entry["prerequisites"] = [
            {"flag": p.flag, "variants": list(p.variants)} for p in flag.prerequisites
        ]
    if flag.rules:
        entry["rules"] = [
            {"id": r.id, "when": _conditions(r.when), "serve": _serve(r.serve)} for r in flag.rules
        ]
    if flag.fallthrough is not None:
        entry["fallthrough"] = _serve(flag.fallthrough)
    if flag.metadata:
        entry["metadata"] = dict(flag.metadata)
    return entry


def segment_entry(segment: Segment) -> dict[str, Any]:
    """The document entry of one segment."""
    entry: dict[str, Any] = {}
    if segment.include:
        entry["include"] = sorted(segment.include)
    if segment.exclude:
        entry["exclude"] = sorted(segment.exclude)
    if segment.when:
        entry["when"] = _conditions(segment.when)
    return entry


def _conditions(conditions: tuple[Condition, ...]) -> list[dict[str, Any]]:
    out = []
    for c in conditions:
        cond: dict[str, Any] = {"op": c.op}
        if c.attr is not None:
            cond["attr"] = c.attr
        if c.values:
            cond["values"] = list(c.values)
        if c.negate:
            cond["negate"] = True
        if c.case_insensitive:
            cond["case_insensitive"] = True
        out.append(cond)
    return out


def _serve(serve: Serve) -> Mapping[str, Any]:
    if serve.variant is not None:
        return {"variant": serve.variant}
    assert serve.rollout is not None
    rollout: dict[str, Any] = {
        "weights": [{"variant": w.variant, "weight": w.weight} for w in serve.rollout.weights],
        "bucket_by": serve.rollout.bucket_by,
        "hash": serve.rollout.hash,
    }
    if serve.rollout.salt is not None:
        rollout["salt"] = serve.rollout.salt
    return {"rollout": rollout}
