"""Read flagd flag definitions (https://flagd.dev/reference/flag-definitions/) as format-v1.

Pure and standard-library only, the inverse of ``interop.flagd.export_flagd``: a flagd
definitions mapping in, a format-v1 fragment out (``{"flags": {...}, "segments": {...}}``,
each flag with ``enabled``, ``variants``, ``fallthrough``, ``rules`` and the flagapp fields its
``metadata`` names). Like the exporter it is **exact or refused**: a JSON Logic construct is
read only when the engine evaluates the result with the same value and variant as flagd for
contexts whose attributes are strings; anything else raises ``FlagdImportError`` naming the
flag and the JSON path in the flagd file. ``export_flagd(import_flagd(d))`` gives back ``d``
for every document the exporter writes (tests/interop/test_flagd_import.py).

What is read (docs/interop.md, "flagd import"):

- ``targeting``: an ``if`` chain (nested ``if`` in the else branch is flattened) whose branches
  name a variant, ``null`` (flagd's ``defaultVariant``) or a ``fractional``; a top-level
  ``fractional``. A condition that is ``or`` at the top of a branch becomes one rule per
  alternative (first match wins, same variant).
- conditions: ``and``, ``==``/``===`` with a string, ``in`` (``var`` in a list of strings, or a
  string in a ``var``: ``contains``), ``starts_with``, ``ends_with`` (``or`` over the same
  attribute), ``sem_ver`` (``= < <= > >=``, and ``^``/``~`` as the version range they mean),
  ``!==``/``===`` against ``null`` (exists), ``$ref`` to ``$evaluators`` (segments), and the
  exporter's guarded negations.
- ``fractional`` with ``bucketing="cbor"`` (flagd-core 2.x): the shorthand only (flagd hashes
  ``cbor([flagKey, targetingKey])`` = ``"hash": "flagd-cbor"``); flagd-core 2.x hashes the
  CBOR of whatever an explicit bucketing expression yields, which no flagapp hash matches.
  With ``bucketing="legacy"`` (flagd-core 1.x): the shorthand (``flagKey + targetingKey``),
  ``{"cat": [{"var": "$flagd.flagKey"} | "salt", {"var": attr}]}`` and ``{"var": attr}`` —
  all ``murmur3-concat``, which hashes exactly ``salt + value``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from openfeature_provider.exceptions import FlagdImportError

__all__ = ["FLAG_METADATA_FIELDS", "FlagdImportError", "as_document", "import_flagd", "infer_kind"]

Bucketing = Literal["cbor", "legacy"]

#: flagd flag ``metadata`` keys that carry flagapp flag fields (what the exporter writes);
#: ``version`` is the state version, derived, and ignored on import.
FLAG_METADATA_FIELDS: Final = {
    "owner": "owner",
    "type": "type",
    "risk": "risk",
    "expiresOn": "expires_on",
}
_DERIVED_METADATA: Final = frozenset({"version"})

_SEMVER_OPS: Final = {
    "=": "semver_eq",
    "<": "semver_lt",
    "<=": "semver_lte",
    ">": "semver_gt",
    ">=": "semver_gte",
}
# Strict SemVer 2.0.0 (the engine's parser accepts the same); flagd also reads "v1.2" etc.
_SEMVER: Final = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_FLAG_KEYS: Final = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})
_TOP_KEYS: Final = frozenset({"$schema", "flags", "$evaluators", "metadata"})


def _p(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def infer_kind(variants: Mapping[str, Any]) -> str | None:
    """The flagapp kind whose values are exactly ``variants``' values, or ``None`` (mixed)."""
    values = list(variants.values())
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, (dict, list)) for v in values):
        return "object"
    return None


class _Importer:
    def __init__(self, defs: Any, bucketing: Bucketing) -> None:
        if bucketing not in ("cbor", "legacy"):
            raise FlagdImportError(None, "bucketing", f"unknown flagd bucketing {bucketing!r}")
        if not isinstance(defs, Mapping):
            raise FlagdImportError(None, "$", "expected a JSON object of flagd definitions")
        unknown = sorted(set(defs) - _TOP_KEYS)
        if unknown:
            raise FlagdImportError(None, "$", f"unknown key(s) {', '.join(unknown)}")
        if not isinstance(defs.get("flags"), Mapping):
            raise FlagdImportError(None, "$.flags", "expected an object of flags")
        evaluators = defs.get("$evaluators") or {}
        if not isinstance(evaluators, Mapping):
            raise FlagdImportError(None, "$.$evaluators", "expected an object")
        self.defs = defs
        self.bucketing = bucketing
        self.evaluators: Mapping[str, Any] = evaluators
        self.segments: dict[str, Any] = {}

    # -- small readers -------------------------------------------------------------------
    @staticmethod
    def var(flag: str | None, path: str, expr: Any) -> str | None:
        """The attribute ``{"var": ...}`` reads, ``None`` when ``expr`` is not a ``var``."""
        if not isinstance(expr, Mapping) or set(expr) != {"var"}:
            return None
        arg = expr["var"]
        if isinstance(arg, list):
            if len(arg) != 1:
                raise FlagdImportError(
                    flag, f"{path}.var", "a var with a default value has no flagapp form"
                )
            arg = arg[0]
        if not isinstance(arg, str) or not arg:
            raise FlagdImportError(flag, f"{path}.var", "expected an attribute name")
        if arg.startswith("$flagd."):
            raise FlagdImportError(
                flag,
                f"{path}.var",
                f"flagapp conditions cannot read {arg!r} (flagd's evaluation properties)",
            )
        return arg

    def need_var(self, flag: str | None, path: str, expr: Any) -> str:
        attr = self.var(flag, path, expr)
        if attr is None:
            raise FlagdImportError(flag, path, 'expected {"var": attribute}')
        return attr

    @staticmethod
    def string(flag: str | None, path: str, value: Any, op: str) -> str:
        if not isinstance(value, str):
            raise FlagdImportError(
                flag,
                path,
                f"{op!r} is read with string values only (JSON Logic compares numbers and "
                "booleans loosely: true == 1)",
            )
        return value

    # -- conditions ----------------------------------------------------------------------
    def when(self, flag: str | None, path: str, expr: Any) -> list[dict[str, Any]]:
        """The AND-list of flagapp conditions equivalent to the JSON Logic ``expr``."""
        if expr is True:
            return []
        if not isinstance(expr, Mapping) or len(expr) != 1:
            raise FlagdImportError(flag, path, "expected one JSON Logic operation")
        ((op, args),) = expr.items()
        opath = f"{path}[{_p(op)}]"
        if op == "and":
            if not isinstance(args, list) or not args:
                raise FlagdImportError(flag, opath, "expected a non-empty list")
            guarded = self.guarded(flag, opath, args)
            if guarded is not None:
                return [guarded]
            out: list[dict[str, Any]] = []
            for i, part in enumerate(args):
                out += self.when(flag, f"{opath}[{i}]", part)
            return out
        try:
            return [self.condition(flag, path, op, args)]
        except _Range as r:
            return r.conditions()

    def guarded(self, flag: str | None, path: str, args: list[Any]) -> dict[str, Any] | None:
        """The exporter's ``[is-a-string, X]`` pairs: ``not_in`` / ``neq`` and semver."""
        if len(args) != 2 or not isinstance(args[0], Mapping):
            return None
        guard = args[0].get("starts_with")
        if set(args[0]) != {"starts_with"} or not isinstance(guard, list) or len(guard) != 2:
            return None
        attr = self.var(flag, f"{path}[0].starts_with[0]", guard[0])
        if attr is None or guard[1] != "":
            return None
        inner = args[1]
        if isinstance(inner, Mapping) and set(inner) == {"!"}:
            neg = inner["!"]
            if isinstance(neg, Mapping) and set(neg) == {"in"}:
                cond = self.condition(flag, f"{path}[1].!", "in", neg["in"])
                if cond["op"] == "in" and cond["attr"] == attr:
                    return {"attr": attr, "op": "not_in", "values": cond["values"]}
            return None
        if (
            isinstance(inner, Mapping)
            and len(inner) == 1
            and next(iter(inner)) in ("sem_ver", "or")
        ):
            conds = self.when(flag, f"{path}[1]", inner)
            if (
                len(conds) == 1
                and conds[0]["op"].startswith("semver_")
                and conds[0]["attr"] == attr
            ):
                return conds[0]
        return None

    def condition(self, flag: str | None, path: str, op: str, args: Any) -> dict[str, Any]:
        opath = f"{path}[{_p(op)}]"
        if op == "$ref":
            return {"op": "in_segment", "values": [self.segment(flag, opath, args)]}
        if op == "!":
            inner = args[0] if isinstance(args, list) and len(args) == 1 else args
            if isinstance(inner, Mapping) and len(inner) == 1:
                ((iop, iargs),) = inner.items()
                if iop in ("$ref", "or"):
                    cond = self.condition(flag, opath, iop, iargs)
                    if cond["op"] == "in_segment":
                        return {"op": "not_in_segment", "values": cond["values"]}
            raise FlagdImportError(
                flag,
                opath,
                "negation is read only of segment references ($ref) and, with the "
                '{"starts_with": [var, ""]} is-a-string guard, of "in" (flagd negates a '
                "missing attribute to true, flagapp's negative operators are false there)",
            )
        if op == "or":
            if not isinstance(args, list) or not args:
                raise FlagdImportError(flag, opath, "expected a non-empty list")
            parts = [self.when(flag, f"{opath}[{i}]", a) for i, a in enumerate(args)]
            if all(len(p) == 1 for p in parts):
                first = parts[0][0]
                same = all(
                    p[0]["op"] == first["op"] and p[0].get("attr") == first.get("attr")
                    for p in parts
                )
                if same and first["op"] in (
                    "in_segment",
                    "contains",
                    "starts_with",
                    "ends_with",
                    *_SEMVER_OPS.values(),
                ):
                    values = [v for p in parts for v in p[0]["values"]]
                    return {**first, "values": values}
            raise FlagdImportError(
                flag,
                opath,
                "'or' is read at the top of a rule's condition (one rule per alternative) or "
                "over one attribute and operator; this one has no single flagapp condition",
            )
        if not isinstance(args, list):
            raise FlagdImportError(flag, opath, "expected a list of arguments")
        if op in ("==", "==="):
            if len(args) == 2 and args[1] is None and op == "===":
                return {"attr": self.need_var(flag, f"{opath}[0]", args[0]), "op": "not_exists"}
            if len(args) != 2:
                raise FlagdImportError(flag, opath, "expected two arguments")
            a, b = args
            attr = self.var(flag, f"{opath}[0]", a)
            value, vi = b, 1
            if attr is None:
                attr, value, vi = self.need_var(flag, f"{opath}[1]", b), a, 0
            return {
                "attr": attr,
                "op": "eq",
                "values": [self.string(flag, f"{opath}[{vi}]", value, op)],
            }
        if op == "!==":
            if len(args) == 2 and args[1] is None:
                return {"attr": self.need_var(flag, f"{opath}[0]", args[0]), "op": "exists"}
            raise FlagdImportError(
                flag, opath, "'!==' is read only against null (an attribute exists)"
            )
        if op == "in":
            if len(args) != 2:
                raise FlagdImportError(flag, opath, "expected two arguments")
            attr = self.var(flag, f"{opath}[0]", args[0])
            if attr is not None:
                if not isinstance(args[1], list) or not args[1]:
                    raise FlagdImportError(
                        flag, f"{opath}[1]", "expected a non-empty list of strings"
                    )
                values = [
                    self.string(flag, f"{opath}[1][{i}]", v, op) for i, v in enumerate(args[1])
                ]
                return {"attr": attr, "op": "in", "values": values}
            attr = self.need_var(flag, f"{opath}[1]", args[1])
            return {
                "attr": attr,
                "op": "contains",
                "values": [self.string(flag, f"{opath}[0]", args[0], op)],
            }
        if op in ("starts_with", "ends_with"):
            if len(args) != 2:
                raise FlagdImportError(
                    flag, opath, f"{op} takes two arguments (flagd answers null otherwise)"
                )
            attr = self.need_var(flag, f"{opath}[0]", args[0])
            return {
                "attr": attr,
                "op": op,
                "values": [self.string(flag, f"{opath}[1]", args[1], op)],
            }
        if op == "sem_ver":
            return self.sem_ver(flag, opath, args)
        raise FlagdImportError(
            flag, opath, f"JSON Logic operation {op!r} has no exact flagapp condition"
        )

    def sem_ver(self, flag: str | None, path: str, args: list[Any]) -> dict[str, Any]:
        if len(args) != 3:
            raise FlagdImportError(
                flag, path, "sem_ver takes three arguments (flagd answers null otherwise)"
            )
        attr = self.need_var(flag, f"{path}[0]", args[0])
        sop, version = args[1], args[2]
        if not isinstance(version, str) or not _SEMVER.match(version):
            raise FlagdImportError(
                flag,
                f"{path}[2]",
                f"{version!r} is not a strict SemVer 2.0.0 version (flagd also reads 'v1.2' "
                "forms, flagapp does not)",
            )
        if sop in _SEMVER_OPS:
            return {"attr": attr, "op": _SEMVER_OPS[sop], "values": [version]}
        if sop in ("^", "~"):
            # flagd: "^" = same major, "~" = same major and minor (prereleases included), so the
            # range starts at the lowest version of that major/minor: "X.Y.0-0".
            major, minor = (int(x) for x in version.split(".")[:2])
            raise _Range(
                attr,
                f"{major}.0.0-0" if sop == "^" else f"{major}.{minor}.0-0",
                f"{major + 1}.0.0-0" if sop == "^" else f"{major}.{minor + 1}.0-0",
            )
        raise FlagdImportError(flag, f"{path}[1]", f"sem_ver operator {sop!r} has no flagapp form")

    # -- segments ------------------------------------------------------------------------
    def segment(self, flag: str | None, path: str, name: Any) -> str:
        if not isinstance(name, str):
            raise FlagdImportError(flag, path, "expected an evaluator name")
        if name not in self.evaluators:
            raise FlagdImportError(flag, path, f"no evaluator {name!r} in $evaluators")
        if name not in self.segments:
            self.segments[name] = None  # cycle guard
            self.segments[name] = self.segment_doc(name)
        return name

    def segment_doc(self, name: str) -> dict[str, Any]:
        """The exporter's segment form ``{"if": [{"in": [tk, exclude]}, false, {"in": [tk,
        include]}, true, when]}`` (either list optional), or a plain condition."""
        logic = self.evaluators[name]
        path = f'$["$evaluators"][{_p(name)}]'
        include: list[str] = []
        exclude: list[str] = []
        if isinstance(logic, Mapping) and set(logic) == {"if"} and isinstance(logic["if"], list):
            parts = list(logic["if"])
            i = 0
            while len(parts) - i >= 3 and parts[i + 1] in (True, False):
                test = parts[i]
                args = test.get("in") if isinstance(test, Mapping) and set(test) == {"in"} else None
                if (
                    not isinstance(args, list)
                    or len(args) != 2
                    or self.var(None, f"{path}.if[{i}]", args[0]) != "targetingKey"
                    or not isinstance(args[1], list)
                    or not all(isinstance(v, str) for v in args[1])
                ):
                    break
                (include if parts[i + 1] else exclude).extend(args[1])
                i += 2
            if i == len(parts) - 1 and (include or exclude):
                rest = parts[i]
                when = [] if rest is False else self.segment_when(path, f".if[{i}]", rest)
                if rest is True:
                    raise FlagdImportError(
                        None, f"{path}.if[{i}]", "a segment matching everyone has no flagapp form"
                    )
                if rest is False or when:
                    return {"include": include, "exclude": exclude, "when": when}
        when = self.segment_when(path, "", logic)
        if not when:
            raise FlagdImportError(None, path, "a segment matching everyone has no flagapp form")
        return {"include": [], "exclude": [], "when": when}

    def segment_when(self, path: str, suffix: str, expr: Any) -> list[dict[str, Any]]:
        return self.when(None, path + suffix, expr)

    # -- serving -------------------------------------------------------------------------
    def rollout(self, flag: str, path: str, args: Any, variants: Mapping[str, Any]) -> Any:
        fpath = f"{path}.fractional"
        if not isinstance(args, list) or not args:
            raise FlagdImportError(flag, fpath, "expected a list of [variant, weight]")
        shorthand = isinstance(args[0], list)
        buckets = args if shorthand else args[1:]
        first = 0 if shorthand else 1
        rollout: dict[str, Any] = {}
        if self.bucketing == "cbor":
            if not shorthand:
                raise FlagdImportError(
                    flag,
                    f"{fpath}[0]",
                    "flagd-core 2.x hashes the CBOR encoding of an explicit bucketing "
                    "expression's value, which no flagapp hash reproduces; only the shorthand "
                    '(cbor([flagKey, targetingKey]), "hash": "flagd-cbor") is read. Files '
                    "written for flagd-core 1.x: --flagd-bucketing legacy",
                )
            rollout["hash"] = "flagd-cbor"
        elif not shorthand:
            rollout.update(self.bucket_expression(flag, f"{fpath}[0]", args[0]))
        weights: list[dict[str, Any]] = []
        total = 0
        for i, b in enumerate(buckets):
            bpath = f"{fpath}[{i + first}]"
            if not isinstance(b, list) or not 1 <= len(b) <= 2:
                raise FlagdImportError(flag, bpath, "expected [variant] or [variant, weight]")
            variant = b[0]
            if not isinstance(variant, str):
                raise FlagdImportError(
                    flag,
                    f"{bpath}[0]",
                    "a bucket's variant must be a variant name (computed variants have no "
                    "flagapp form)",
                )
            if variant not in variants:
                raise FlagdImportError(flag, f"{bpath}[0]", f"unknown variant {variant!r}")
            weight = b[1] if len(b) == 2 else 1
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise FlagdImportError(
                    flag,
                    f"{bpath}[1]",
                    "a weight must be an integer (computed weights have no flagapp form)",
                )
            weights.append({"variant": variant, "weight": max(0, weight)})
            total += max(0, weight)
        if total <= 0:
            raise FlagdImportError(
                flag, fpath, "the weights sum to 0 (flagd then answers its defaultVariant)"
            )
        rollout["weights"] = weights
        return {"rollout": rollout}

    def bucket_expression(self, flag: str, path: str, expr: Any) -> dict[str, Any]:
        """flagd-core 1.x hashes the string the expression yields: ``{"var": a}`` is
        ``murmur3-concat`` with salt ``""``; ``{"cat": [salt, {"var": a}]}`` with that salt
        (``{"var": "$flagd.flagKey"}``: the default, the flag key)."""
        if isinstance(expr, Mapping) and set(expr) == {"var"}:
            return {"bucket_by": self.need_var(flag, path, expr), "salt": ""}
        args = expr.get("cat") if isinstance(expr, Mapping) and set(expr) == {"cat"} else None
        if isinstance(args, list) and len(args) == 2:
            out: dict[str, Any] = {}
            prefix = args[0]
            if prefix != {"var": "$flagd.flagKey"}:
                if not isinstance(prefix, str):
                    raise FlagdImportError(
                        flag, f"{path}.cat[0]", 'expected a string or {"var": "$flagd.flagKey"}'
                    )
                out["salt"] = prefix
            bucket_by = self.need_var(flag, f"{path}.cat[1]", args[1])
            if bucket_by != "targetingKey":
                out["bucket_by"] = bucket_by
            return out
        raise FlagdImportError(
            flag,
            path,
            'a bucketing expression is read as {"var": attr} or {"cat": [salt, {"var": attr}]}',
        )

    def serve(self, flag: str, path: str, expr: Any, variants: Mapping[str, Any]) -> Any:
        """A branch's result: a variant name, ``None`` (defaultVariant) or a rollout."""
        if expr is None:
            return None
        if isinstance(expr, str):
            if expr not in variants:
                raise FlagdImportError(flag, path, f"unknown variant {expr!r}")
            return {"variant": expr}
        if isinstance(expr, Mapping) and set(expr) == {"fractional"}:
            return self.rollout(flag, path, expr["fractional"], variants)
        raise FlagdImportError(
            flag,
            path,
            "a targeting branch must name a variant, be null or a fractional (a computed or "
            "non-string result has no flagapp form)",
        )

    def chain(
        self, flag: str, path: str, expr: Any, variants: Mapping[str, Any]
    ) -> tuple[list[tuple[list[list[dict[str, Any]]], Any]], Any]:
        """``([(alternatives, serve)], else)`` of a targeting expression."""
        if isinstance(expr, Mapping) and set(expr) == {"if"}:
            args = expr["if"]
            ipath = f"{path}.if"
            if not isinstance(args, list) or len(args) < 2:
                raise FlagdImportError(flag, ipath, "expected [condition, then, ...]")
            pairs: list[tuple[list[list[dict[str, Any]]], Any]] = []
            for i in range(0, len(args) - 1, 2):
                alternatives = self.alternatives(flag, f"{ipath}[{i}]", args[i])
                served = self.serve(flag, f"{ipath}[{i + 1}]", args[i + 1], variants)
                if served is None:
                    raise FlagdImportError(
                        flag,
                        f"{ipath}[{i + 1}]",
                        "a matching branch answering null (defaultVariant, reason DEFAULT) has "
                        "no flagapp rule form",
                    )
                pairs.append((alternatives, served))
            if len(args) % 2 == 0:
                return pairs, None
            rest_pairs, rest = self.chain(flag, f"{ipath}[{len(args) - 1}]", args[-1], variants)
            return pairs + rest_pairs, rest
        return [], self.serve(flag, path, expr, variants)

    def alternatives(self, flag: str, path: str, expr: Any) -> list[list[dict[str, Any]]]:
        """One AND-list per alternative of a top-level ``or`` (one rule each)."""
        try:
            return [self.when(flag, path, expr)]
        except FlagdImportError:
            if not (isinstance(expr, Mapping) and set(expr) == {"or"}):
                raise
            if not isinstance(expr["or"], list):
                raise
            out: list[list[dict[str, Any]]] = []
            for i, part in enumerate(expr["or"]):
                out += self.alternatives(flag, f'{path}["or"][{i}]', part)
            return out

    # -- flags ---------------------------------------------------------------------------
    def flag(self, key: str, spec: Any) -> dict[str, Any]:
        path = f"$.flags[{_p(key)}]"
        if not isinstance(spec, Mapping):
            raise FlagdImportError(key, path, "expected an object")
        unknown = sorted(set(spec) - _FLAG_KEYS)
        if unknown:
            raise FlagdImportError(key, path, f"unknown key(s) {', '.join(unknown)}")
        state = spec.get("state")
        if state not in ("ENABLED", "DISABLED"):
            raise FlagdImportError(key, f"{path}.state", "expected ENABLED or DISABLED")
        variants = spec.get("variants")
        if not isinstance(variants, Mapping) or not variants:
            raise FlagdImportError(key, f"{path}.variants", "expected a non-empty object")
        if infer_kind(variants) is None:
            raise FlagdImportError(
                key,
                f"{path}.variants",
                "variants of mixed types (a flagapp flag has one kind: boolean, string, "
                "integer, float or object)",
            )
        default = spec.get("defaultVariant")
        if default is not None and (not isinstance(default, str) or default not in variants):
            raise FlagdImportError(key, f"{path}.defaultVariant", f"unknown variant {default!r}")
        rules: list[dict[str, Any]] = []
        fallthrough: Any = {"variant": default} if default is not None else None
        if "targeting" in spec and spec["targeting"] not in (None, {}):
            pairs, rest = self.chain(key, f"{path}.targeting", spec["targeting"], variants)
            for alternatives, served in pairs:
                rules += [{"when": when, "serve": served} for when in alternatives]
            if rest is not None:
                if default is None and "rollout" in rest:
                    fallthrough = rest  # the exporter's form of a fallthrough split
                else:
                    rules.append({"when": [], "serve": rest})
        out: dict[str, Any] = {
            "enabled": state == "ENABLED",
            "variants": dict(variants),
            "fallthrough": fallthrough,
            "rules": rules,
        }
        fields = {}
        for mkey, value in (spec.get("metadata") or {}).items():
            if mkey in FLAG_METADATA_FIELDS:
                fields[FLAG_METADATA_FIELDS[mkey]] = value
            elif mkey not in _DERIVED_METADATA:
                raise FlagdImportError(
                    key,
                    f"{path}.metadata[{_p(mkey)}]",
                    "flagapp flag metadata is derived (owner, type, risk, expiresOn, version); "
                    "other entries have nowhere to go",
                )
        out["fields"] = fields
        return out

    def run(self) -> dict[str, Any]:
        flags = {key: self.flag(key, spec) for key, spec in self.defs["flags"].items()}
        return {"flags": flags, "segments": dict(sorted(self.segments.items()))}


class _Range(Exception):
    """A ``sem_ver`` ``^``/``~``: two conditions where one was expected."""

    def __init__(self, attr: str, low: str, high: str) -> None:
        super().__init__(attr)
        self.attr, self.low, self.high = attr, low, high

    def conditions(self) -> list[dict[str, Any]]:
        return [
            {"attr": self.attr, "op": "semver_gte", "values": [self.low]},
            {"attr": self.attr, "op": "semver_lt", "values": [self.high]},
        ]


def import_flagd(defs: Any, bucketing: Bucketing = "cbor") -> dict[str, Any]:
    """The format-v1 reading of flagd definitions: ``{"flags": {key: {"enabled",
    "variants", "fallthrough", "rules", "fields"}}, "segments": {name: {"include",
    "exclude", "when"}}}`` (``fields``: the flagapp flag fields the flag's metadata names).
    Raises ``FlagdImportError`` (flag and JSON path) for what flagd would evaluate
    differently."""
    return _Importer(defs, bucketing).run()


def as_document(imported: Mapping[str, Any], environment: str = "flagd") -> dict[str, Any]:
    """A format-v1 ruleset document of an ``import_flagd`` result, for the engine directly
    (tests; the Django import goes through the services instead)."""
    flags = {}
    for key, flag in imported["flags"].items():
        kind = infer_kind(flag["variants"])
        rules = [{"id": f"r{i}", **r} for i, r in enumerate(flag["rules"])]
        flags[key] = {
            "kind": kind,
            **{k: v for k, v in flag.items() if k not in ("fields", "rules")},
            "rules": rules,
        }
    return {
        "format": 1,
        "environment": environment,
        "version": 1,
        "etag": "",
        "flags": flags,
        "segments": dict(imported["segments"]),
    }
