"""JSON Logic conditions and flagd ``$evaluators`` read as format-v1 conditions and segments.

The condition half of the flagd import (:mod:`openfeature_provider.interop.flagd_import`
reads the flags: targeting chains, ``fractional`` splits, variants and metadata). Same
contract: **exact or refused** — a JSON Logic construct becomes a flagapp condition only
when the engine evaluates it like flagd does for contexts whose attributes are strings;
anything else raises ``FlagdImportError`` naming the flag (None inside an evaluator) and
the JSON path in the flagd file.

What is read: ``and``; ``==``/``===`` with a string; ``in`` (``var`` in a list of strings,
or a string in a ``var``: ``contains``); ``starts_with``/``ends_with`` (``or`` over the same
attribute); ``sem_ver`` (``= < <= > >=``, and ``^``/``~`` as the version range they mean);
``!==``/``===`` against ``null`` (exists); ``$ref`` to ``$evaluators`` (segments, in the
exporter's include/exclude form or as a plain condition); the exporter's guarded negations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from openfeature_provider.exceptions import FlagdImportError

__all__ = ["ConditionReader", "json_key"]

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


def json_key(key: str) -> str:
    """``key`` as it is written inside a JSON path (``$.flags["a.b"]``)."""
    return json.dumps(key, ensure_ascii=False)


_p = json_key


class ConditionReader:
    """Reads the conditions of one flagd file; ``segments`` collects the ``$evaluators``
    that were referenced (``{name: {"include", "exclude", "when"}}``)."""

    def __init__(self, evaluators: Mapping[str, Any]) -> None:
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
