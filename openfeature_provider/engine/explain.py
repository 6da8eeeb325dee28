"""Why a context gets what it gets: the evaluation of one flag, step by step, as JSON.

Why a separate module: the compiled evaluator (compiler.py, codegen.py) returns only the
outcome, because it must cost microseconds; a person debugging a flag needs the path that
led there — was the flag on, which prerequisite held, which rule was tried, which of its
conditions and segments matched and on what value, where the user fell in a split. This
module walks the same parsed ruleset with the same compiled condition and segment
predicates (``compiler.compile_condition`` / ``compile_segments``) and the same bucketing
(``bucketing.key_encoder`` / ``digest`` / ``thresholds``), and takes the outcome itself from
:func:`~openfeature_provider.engine.evaluate` — so the explanation is of the real result,
and a test checks the walk reaches the same rule and variant on every conformance case.

``flagapp-eval --explain`` prints :func:`explain_row` per flag and context, and the Django
admin's playground shows the same rows (docs/cli.md, docs/admin.md); :func:`to_json_line`
is the one JSON-lines encoding of a row, so both outputs are byte-identical.

The result is plain JSON (str keys, lists, scalars), ``"why"`` in :func:`explain_row`::

    {"enabled": true,
     "prerequisites": [{"flag": "a", "variants": ["on"], "got": "on", "met": true}],
     "rules": [{"id": "pros", "matched": true,
                "conditions": [{"attr": "plan", "op": "in", "values": ["pro"],
                                "actual": "pro", "matched": true}]}],
     "segments": {"beta": {"member": true, "by": "include"}},
     "decided": "rule",           # or fallthrough | disabled | prerequisite | not-found | error
     "rollout": {"bucketBy": "targetingKey", "value": "u1", "hash": "murmur3-concat",
                 "position": 12.3456, "split": [{"variant": "on", "upTo": 25.0}, ...]}}

Rules after the deciding one are ``"matched": null`` (not tried). ``actual`` is the
attribute's value as read (strings cut at 200 characters; objects and arrays by type only),
so a row never carries a whole nested context.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from .adapt import served
from .bucketing import digest, key_encoder, thresholds
from .compiler import Predicate, compile_condition, compile_segments, make_getter
from .evaluate import evaluate
from .operators import OPERATORS
from .types import Condition, Context, ErrorCode, Flag, Resolution, Rollout, Ruleset, Serve

__all__ = ["Explainer", "explain_row", "to_json_line"]

#: Longest string shown as an attribute's ``actual`` value.
MAX_SHOWN_STRING = 200


def _shown(value: Any) -> Any:
    """An attribute value as the trace shows it (bounded: see the module docstring)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_SHOWN_STRING else value[:MAX_SHOWN_STRING] + "…"
    if isinstance(value, Mapping):
        return {"type": "object"}
    if isinstance(value, list | tuple):
        return {"type": "array", "length": len(value)}
    return {"type": type(value).__name__}


def _condition_doc(cond: Condition) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if cond.attr is not None:
        doc["attr"] = cond.attr
    doc["op"] = cond.op
    doc["values"] = list(cond.values)
    if cond.negate:
        doc["negate"] = True
    if cond.case_insensitive:
        doc["case_insensitive"] = True
    return doc


class Explainer:
    """Explains flags of one ruleset; segment predicates are compiled once per explainer
    (the playground explains every flag of a snapshot for one context)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self._segment_tests: dict[str, Predicate] = compile_segments(ruleset.segments)
        #: compiled predicates by ``id()`` of their (frozen, ruleset-owned) Condition
        self._conditions: dict[int, Predicate] = {}

    # ------------------------------------------------------------------ conditions, segments

    def _predicate(self, where: str, cond: Condition) -> Predicate:
        pred = self._conditions.get(id(cond))
        if pred is None:
            pred = compile_condition(cond, self._segment_tests, where)
            self._conditions[id(cond)] = pred
        return pred

    def _segment(self, key: str, ctx: Context, seen: dict[str, Any]) -> bool:
        """Membership of segment ``key`` with its reason, recorded once in ``seen``."""
        if key in seen:
            return bool(seen[key]["member"])
        seg = self.ruleset.segments.get(key)
        if seg is None:  # the parser refuses unknown segments; kept total anyway
            seen[key] = {"member": False, "by": "unknown segment"}
            return False
        member = self._segment_tests[key](ctx)
        tk = ctx.get("targetingKey")
        entry: dict[str, Any] = {"member": member}
        if isinstance(tk, str) and tk in seg.exclude:
            entry["by"] = "exclude"
        elif isinstance(tk, str) and tk in seg.include:
            entry["by"] = "include"
        elif seg.when:
            entry["by"] = "conditions"
        else:
            entry["by"] = "no conditions"
        seen[key] = entry  # before the conditions: a segment is never its own dependency
        if entry["by"] == "conditions":
            entry["conditions"] = [
                self._condition(f"segment {key!r}", i, c, ctx, seen) for i, c in enumerate(seg.when)
            ]
        return bool(member)

    def _condition(
        self, where: str, index: int, cond: Condition, ctx: Context, seen: dict[str, Any]
    ) -> dict[str, Any]:
        doc = _condition_doc(cond)
        op = OPERATORS[cond.op]
        if op.uses_attr and cond.attr is not None:
            doc["actual"] = _shown(make_getter(cond.attr)(ctx))
        else:
            for key in cond.values:
                self._segment(str(key), ctx, seen)
        doc["matched"] = self._predicate(where, cond)(ctx)
        return doc

    # ------------------------------------------------------------------------- the flag

    def why(self, flag_key: str, context: Context, resolution: Resolution) -> dict[str, Any]:
        """The path to ``resolution`` (what :func:`evaluate` returned for this context)."""
        flag = self.ruleset.flags.get(flag_key)
        if flag is None:
            return {"decided": "not-found"}
        if resolution.error_code == ErrorCode.TYPE_MISMATCH:
            return {"enabled": flag.enabled, "decided": "error"}
        out: dict[str, Any] = {"enabled": flag.enabled}
        if not flag.enabled:
            out["decided"] = "disabled"
            return out
        segments: dict[str, Any] = {}
        if flag.prerequisites:
            prereqs = []
            met_all = True
            for pre in flag.prerequisites:
                got = evaluate(self.ruleset, pre.flag, context)
                variant = None if got.use_default else got.variant
                met = variant is not None and variant in pre.variants
                prereqs.append(
                    {
                        "flag": pre.flag,
                        "variants": list(pre.variants),
                        "got": variant,
                        "reason": got.reason,
                        "met": met,
                    }
                )
                met_all = met_all and met
            out["prerequisites"] = prereqs
            if not met_all:
                out["decided"] = "prerequisite"
                return out
        rules: list[dict[str, Any]] = []
        decided: tuple[str, Serve | None] | None = None
        for rule in flag.rules:
            if decided is not None:
                rules.append({"id": rule.id, "matched": None})
                continue
            where = f"flag {flag.key!r} rule {rule.id!r}"
            conds = [
                self._condition(where, i, c, context, segments) for i, c in enumerate(rule.when)
            ]
            matched = all(c["matched"] for c in conds)
            rules.append({"id": rule.id, "matched": matched, "conditions": conds})
            if matched:
                decided = ("rule", rule.serve)
        if rules:
            out["rules"] = rules
        if segments:
            out["segments"] = segments
        if decided is None:
            decided = ("fallthrough", flag.fallthrough)
        out["decided"] = decided[0]
        serve = decided[1]
        if serve is not None and serve.rollout is not None:
            out["rollout"] = _rollout_trace(flag, serve.rollout, context)
        return out


def _rollout_trace(flag: Flag, rollout: Rollout, ctx: Context) -> dict[str, Any]:
    """Where the context fell in the split: ``position`` in [0, 100) against each variant's
    upper bound in %, from the same thresholds the compiled rollout compares the hash with."""
    total = rollout.total_weight
    bounds: list[dict[str, Any]] = []
    running = 0
    for w in rollout.weights:
        running += w.weight
        bounds.append({"variant": w.variant, "upTo": round(running * 100 / total, 4)})
    out: dict[str, Any] = {"bucketBy": rollout.bucket_by, "hash": rollout.hash, "split": bounds}
    value = make_getter(rollout.bucket_by)(ctx)
    out["value"] = _shown(value)
    if not isinstance(value, str):
        return out
    salt = flag.key if rollout.salt is None else rollout.salt
    encode: Callable[[str], bytes] = key_encoder(rollout.hash, salt)
    try:
        h = digest(encode(value), 0)
    except UnicodeEncodeError:
        return out
    out["position"] = round(h * 100 / 2**32, 4)
    limits = thresholds([w.weight for w in rollout.weights])
    out["variant"] = rollout.weights[bisect_right(limits, h)].variant
    return out


def explain_row(
    ruleset: Ruleset,
    flag_key: str,
    context: Context,
    *,
    explainer: Explainer | None = None,
) -> dict[str, Any]:
    """One ``flagapp-eval --explain`` row: the served outcome (the engine's ``served``
    adapter with no caller default: ``value`` null whenever the default would be served),
    the deciding rule, the error message and ``why``."""
    res = evaluate(ruleset, flag_key, context)
    out = served(res, None)
    return {
        "flag": res.flag_key,
        "value": out.value,
        "variant": out.variant,
        "reason": out.reason,
        "errorCode": out.error_code,
        "rule": res.rule_id,
        "errorMessage": out.error_message,
        "why": (explainer or Explainer(ruleset)).why(flag_key, context, res),
    }


#: Characters that JSON leaves unescaped but line splitters (``str.splitlines``, editors,
#: some JSON-lines readers) treat as line ends: escaped so a row is always one line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def to_json_line(row: Mapping[str, Any]) -> str:
    """The CLI's encoding of one row (no newline): UTF-8 text, compact separators; a row
    holding a lone surrogate (from a ``"\\ud800"`` escape in the input) is ASCII-escaped,
    and NEL / LINE SEPARATOR / PARAGRAPH SEPARATOR are always escaped (they can only occur
    inside JSON strings, where the escape means the same character)."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, separators=(",", ":"))
    return text.translate(_LINE_BREAKS)
