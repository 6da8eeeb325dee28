"""Export a format-v1 ruleset document as flagd flag definitions (https://flagd.dev/reference/flag-definitions/).

Pure and standard-library only: a format-v1 *document* (a mapping, as ``parse_ruleset``
accepts) in, a flagd definitions mapping out. The export is **exact or refused**: every
construct is mapped only when flagd evaluates it with the same answer as the engine for
every context whose bucket value is a non-empty string; anything else raises
``FlagdExportError`` naming the flag and the JSON path. See docs/interop.md for the table.

Bucketing (``bucketing=``):

- ``"cbor"`` (default): flagd-core 2.x and flagd after its hashing ADR hash
  ``cbor([flagKey, targetingKey])``. Only rollouts with ``"hash": "flagd-cbor"``, bucketed by
  ``targetingKey`` with the flag key as salt, are exported (as the shorthand
  ``{"fractional": [[variant, weight], ...]}``).
- ``"legacy"``: flagd-core 1.x and flagd before the ADR hash the string a bucketing expression
  yields; ``{"cat": [salt, {"var": bucket_by}]}`` yields exactly ``salt + value``, the engine's
  default ``murmur3-concat``. ``flagd-cbor`` rollouts cannot be expressed there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from openfeature_provider.exceptions import FlagdExportError

__all__ = ["BUCKETING_MODES", "FLAGD_SCHEMA_URL", "FlagdExportError", "export_flagd"]

FLAGD_SCHEMA_URL: Final = "https://flagd.dev/schema/v0/flags.json"
BUCKETING_MODES: Final = ("cbor", "legacy")
Bucketing = Literal["cbor", "legacy"]

_MURMUR3_CONCAT: Final = "murmur3-concat"
_FLAGD_CBOR: Final = "flagd-cbor"

_SEMVER_OPS: Final = {
    "semver_eq": "=",
    "semver_lt": "<",
    "semver_lte": "<=",
    "semver_gt": ">",
    "semver_gte": ">=",
}


def _p(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _var(attr: str) -> dict[str, Any]:
    return {"var": attr}


def _is_string(attr: str) -> dict[str, Any]:
    """True iff the attribute is a string: flagd's ``starts_with`` answers null otherwise."""
    return {"starts_with": [_var(attr), ""]}


class _Exporter:
    def __init__(self, doc: Mapping[str, Any], bucketing: Bucketing) -> None:
        if bucketing not in BUCKETING_MODES:
            raise FlagdExportError(None, "bucketing", f"unknown flagd bucketing {bucketing!r}")
        self.doc = doc
        self.bucketing = bucketing
        self.segments: Mapping[str, Any] = doc.get("segments") or {}
        self.evaluators: dict[str, Any] = {}

    # -- conditions ---------------------------------------------------------------------
    def condition(
        self, flag: str | None, path: str, cond: Mapping[str, Any], inline: bool = False
    ) -> Any:
        op = cond["op"]
        if cond.get("negate"):
            raise FlagdExportError(
                flag, f"{path}.negate", "negated conditions have no exact flagd form"
            )
        if cond.get("case_insensitive"):
            raise FlagdExportError(
                flag, f"{path}.case_insensitive", "flagd has no case-insensitive comparison"
            )
        values = list(cond.get("values") or [])
        if op in ("in_segment", "not_in_segment"):
            refs = [
                self.segment_ref(flag, f"{path}.values[{i}]", s, inline)
                for i, s in enumerate(values)
            ]
            member = refs[0] if len(refs) == 1 else {"or": refs}
            return member if op == "in_segment" else {"!": member}
        attr = cond["attr"]
        if op == "exists":
            return {"!==": [_var(attr), None]}
        if op == "not_exists":
            return {"===": [_var(attr), None]}
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise FlagdExportError(
                    flag,
                    f"{path}.values[{i}]",
                    f"operator {op!r} is exported for string values only "
                    "(JSON Logic compares numbers and booleans loosely: true == 1)",
                )
        if op in ("eq", "in"):
            return {"in": [_var(attr), values]}
        if op in ("neq", "not_in"):
            return {"and": [_is_string(attr), {"!": {"in": [_var(attr), values]}}]}
        if op == "contains":
            tests = [{"in": [v, _var(attr)]} for v in values]
            return tests[0] if len(tests) == 1 else {"or": tests}
        if op in ("starts_with", "ends_with"):
            tests = [{op: [_var(attr), v]} for v in values]
            return tests[0] if len(tests) == 1 else {"or": tests}
        if op in _SEMVER_OPS:
            tests = [{"sem_ver": [_var(attr), _SEMVER_OPS[op], v]} for v in values]
            return {"and": [_is_string(attr), tests[0] if len(tests) == 1 else {"or": tests}]}
        raise FlagdExportError(
            flag, f"{path}.op", f"operator {op!r} has no exact flagd (JSON Logic) form"
        )

    def conditions(
        self, flag: str | None, path: str, when: Sequence[Any], inline: bool = False
    ) -> Any:
        parts = [self.condition(flag, f"{path}[{i}]", c, inline) for i, c in enumerate(when)]
        if not parts:
            return True
        return parts[0] if len(parts) == 1 else {"and": parts}

    # -- segments -----------------------------------------------------------------------
    def segment_logic(self, key: str) -> Any:
        """The segment as JSON Logic. Segments it names are inlined, not ``$ref``'d: flagd
        substitutes ``$ref`` in flag targeting only, once per evaluator, not inside
        ``$evaluators`` themselves."""
        seg = self.segments[key]
        path = f"$.segments[{_p(key)}]"
        when = self.conditions(None, f"{path}.when", seg.get("when") or [], inline=True)
        logic: list[Any] = []
        tk = _var("targetingKey")
        if seg.get("exclude"):
            logic += [{"in": [tk, list(seg["exclude"])]}, False]
        if seg.get("include"):
            logic += [{"in": [tk, list(seg["include"])]}, True]
        if not logic:
            return when
        # A segment without conditions matches only its include list.
        logic.append(when if seg.get("when") else False)
        return {"if": logic}

    def segment_ref(self, flag: str | None, path: str, key: str, inline: bool) -> Any:
        if key not in self.segments:
            raise FlagdExportError(flag, path, f"unknown segment {key!r}")
        if inline:
            return self.segment_logic(key)  # the parser rejects segment cycles
        if not key.isascii() or '"' in key or "\\" in key:
            # flagd-core finds references with a regex over json.dumps (ASCII-escaped) text.
            return self.segment_logic(key)
        if key not in self.evaluators:
            self.evaluators[key] = self.segment_logic(key)
        return {"$ref": key}

    # -- flags --------------------------------------------------------------------------
    def serve(self, flag: str, path: str, serve: Mapping[str, Any]) -> Any:
        if "variant" in serve:
            return serve["variant"]
        rollout = serve["rollout"]
        rpath = f"{path}.rollout"
        algorithm = rollout.get("hash", _MURMUR3_CONCAT)
        bucket_by = rollout.get("bucket_by", "targetingKey")
        salt = rollout.get("salt")
        weights = [[w["variant"], w["weight"]] for w in rollout["weights"]]
        if self.bucketing == "legacy":
            if algorithm != _MURMUR3_CONCAT:
                raise FlagdExportError(
                    flag,
                    f"{rpath}.hash",
                    f"a {algorithm!r} rollout cannot bucket identically in flagd before the "
                    "hashing ADR (flagd-core 1.x hashes strings); export with "
                    "--flagd-bucketing cbor",
                )
            prefix: Any = _var("$flagd.flagKey") if salt is None else salt
            return {"fractional": [{"cat": [prefix, _var(bucket_by)]}, *weights]}
        if algorithm != _FLAGD_CBOR:
            raise FlagdExportError(
                flag,
                f"{rpath}.hash",
                f"a {algorithm!r} rollout buckets differently in flagd-core 2.x (which hashes "
                "cbor([flagKey, targetingKey])); export with --flagd-bucketing legacy for "
                'flagd-core 1.x, or use "hash": "flagd-cbor" for flags new to flagd',
            )
        if bucket_by != "targetingKey":
            raise FlagdExportError(
                flag,
                f"{rpath}.bucket_by",
                "flagd-core 2.x buckets [flagKey, targetingKey] only (shorthand); "
                f"bucketing by {bucket_by!r} has no identical form",
            )
        if salt is not None and salt != flag:
            raise FlagdExportError(
                flag,
                f"{rpath}.salt",
                "flagd-core 2.x salts with the flag key only; a custom salt has no identical form",
            )
        return {"fractional": weights}

    def flag(self, key: str, flag: Mapping[str, Any]) -> dict[str, Any]:
        path = f"$.flags[{_p(key)}]"
        if flag.get("prerequisites"):
            raise FlagdExportError(key, f"{path}.prerequisites", "flagd has no flag prerequisites")
        out: dict[str, Any] = {
            "state": "ENABLED" if flag["enabled"] else "DISABLED",
            "variants": dict(flag["variants"]),
        }
        fallthrough = flag.get("fallthrough")
        rules = flag.get("rules") or []
        chain: list[Any] = []
        for i, rule in enumerate(rules):
            rpath = f"{path}.rules[{i}]"
            chain += [
                self.conditions(key, f"{rpath}.when", rule.get("when") or []),
                self.serve(key, f"{rpath}.serve", rule["serve"]),
            ]
        if fallthrough is not None and "variant" in fallthrough:
            out["defaultVariant"] = fallthrough["variant"]
        else:
            out["defaultVariant"] = None
            if fallthrough is not None:
                chain.append(self.serve(key, f"{path}.fallthrough", fallthrough))
        if chain:
            if len(chain) == 1:
                out["targeting"] = chain[0]
            else:
                out["targeting"] = {"if": chain}
        metadata = {
            k: v
            for k, v in (flag.get("metadata") or {}).items()
            if isinstance(v, (str, bool, int, float))
        }
        if metadata:
            out["metadata"] = metadata
        return out

    def export(self) -> dict[str, Any]:
        flags = {key: self.flag(key, f) for key, f in self.doc["flags"].items()}
        out: dict[str, Any] = {"$schema": FLAGD_SCHEMA_URL, "flags": flags}
        if self.evaluators:
            out["$evaluators"] = dict(sorted(self.evaluators.items()))
        meta: dict[str, Any] = {}
        if "environment" in self.doc:
            meta["flagSetId"] = str(self.doc["environment"])
        if "version" in self.doc:
            meta["version"] = str(self.doc["version"])
        if meta:
            out["metadata"] = meta
        return out


def export_flagd(doc: Mapping[str, Any], bucketing: Bucketing = "cbor") -> dict[str, Any]:
    """flagd flag definitions for the format-v1 ``doc``; ``FlagdExportError`` for anything
    flagd would evaluate differently (the message names the flag and the JSON path)."""
    return _Exporter(doc, bucketing).export()
