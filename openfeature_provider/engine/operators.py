"""The operator table: how each condition ``op`` turns its ``values`` into a test.

Every operator is compiled once, when a ruleset is parsed: the JSON ``values`` are checked and
pre-converted (frozensets, compiled regexes, parsed semvers, aware datetimes, IP networks) so
that evaluating a condition is a couple of C-level operations. A *test* receives the (non-null)
attribute value and returns ``True``/``False``, or ``None`` when the value has a type the
operator cannot use. The caller (compiler.py) turns ``None`` into "condition false" whatever
``negate`` says, because the format's contract is that an unusable attribute never matches.

Negative operators (``neq``, ``not_in``, ``not_contains``) are the negation of their positive
twin *after* that usability check, so ``neq ["a", "b"]`` holds when the attribute equals
neither value, and never holds for a missing attribute.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from .exceptions import RegexProblem, ValueProblem
from .limits import (
    MAX_ADDRESS_LENGTH,
    MAX_INTEGER,
    MAX_MATCH_INPUT_LENGTH,
    MAX_REGEX_LENGTH,
    MAX_SEMVER_LENGTH,
    MIN_INTEGER,
)
from .regex import compile_search

__all__ = [
    "MAX_MATCH_INPUT_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_SEMVER_LENGTH",
    "OPERATORS",
    "Operator",
    "Test",
    "ValueProblem",
    "json_type",
    "number_problem",
    "parse_datetime",
    "parse_semver",
]

#: A compiled test: attribute value -> match, or ``None`` for "unusable type".
Test = Callable[[Any], "bool | None"]


@dataclass(frozen=True, slots=True)
class Operator:
    """One row of the table.

    ``uses_attr``: the condition reads ``attr`` (false for the segment operators).
    ``needs_values``: ``values`` must be a non-empty list (false for exists/not_exists).
    ``negative``: the result of ``build``'s test is inverted (after the usability check).
    ``build``: ``(values, case_insensitive) -> Test``; ``None`` for operators the compiler
    handles itself (presence and segment membership).
    """

    name: str
    uses_attr: bool = True
    needs_values: bool = True
    negative: bool = False
    build: Callable[[Sequence[Any], bool], Test] | None = None


# --------------------------------------------------------------------------------------------
# value helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number_problem(value: Any) -> str | None:
    """Why a number may not appear in a document (None: it may): NaN and Infinity, and
    integers outside signed 64-bit (limits.py)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        return "integer outside the signed 64-bit range"
    return None


def _check_number(i: int, value: Any) -> None:
    problem = number_problem(value)
    if problem is not None:
        raise ValueProblem(i, problem)


def _scalar_sets(
    values: Sequence[Any], ci: bool
) -> tuple[frozenset[str], frozenset[Any], frozenset[bool]]:
    strs: set[str] = set()
    nums: set[Any] = set()
    bools: set[bool] = set()
    for i, v in enumerate(values):
        if isinstance(v, bool):
            bools.add(v)
        elif isinstance(v, str):
            strs.add(v.casefold() if ci else v)
        elif _is_number(v):
            _check_number(i, v)
            nums.add(v)
        else:
            raise ValueProblem(i, f"expected a string, number or boolean, got {json_type(v)}")
    return _frozen(strs), _frozen(nums), _frozen(bools)


#: One shared empty set: most conditions list values of one JSON type only, so two of the
#: three sets are empty, and a frozenset is 216 bytes even when empty (3 MiB at 10,000 flags).
_NO_VALUES: frozenset[Any] = frozenset()


def _frozen(values: set[Any]) -> frozenset[Any]:
    return frozenset(values) if values else _NO_VALUES


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages that a ruleset author reads."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _strings(values: Sequence[Any]) -> list[str]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueProblem(i, f"expected a string, got {json_type(v)}")
    return list(values)


def _numbers(values: Sequence[Any]) -> list[float]:
    for i, v in enumerate(values):
        if not _is_number(v):
            raise ValueProblem(i, f"expected a number, got {json_type(v)}")
        _check_number(i, v)
    return list(values)


# --------------------------------------------------------------------------------------------
# equality family: eq / neq / in / not_in


def _build_eq(values: Sequence[Any], ci: bool) -> Test:
    strs, nums, bools = _scalar_sets(values, ci)
    has_str, has_num, has_bool = bool(strs), bool(nums), bool(bools)

    test_str: Callable[[str], bool]
    if ci:

        def test_str_ci(v: str) -> bool:
            return v.casefold() in strs

        test_str = test_str_ci
    else:
        test_str = strs.__contains__

    def test(v: Any) -> bool | None:
        t = type(v)
        if t is str:
            return test_str(v) if has_str else None
        if t is bool:
            return (v in bools) if has_bool else None
        if t is int or t is float:
            return (v in nums) if has_num else None
        # Subclasses (IntEnum, str subclasses ...) take the slow, careful path.
        if isinstance(v, bool):
            return (bool(v) in bools) if has_bool else None
        if isinstance(v, str):
            return test_str(str(v)) if has_str else None
        if _is_number(v):
            return (v in nums) if has_num else None
        return None

    # Fast path for the common case: string values, exact comparison.
    if has_str and not has_num and not has_bool and not ci:

        def test_only_str(v: Any) -> bool | None:
            if type(v) is str:
                return v in strs
            return test(v)

        return test_only_str
    return test


# --------------------------------------------------------------------------------------------
# contains / not_contains: list membership or substring


def _build_contains(values: Sequence[Any], ci: bool) -> Test:
    member = _build_eq(values, ci)
    subs = tuple(v.casefold() if ci else v for v in values if isinstance(v, str))

    def test(v: Any) -> bool | None:
        if isinstance(v, str):
            if not subs:
                return None
            s = v.casefold() if ci else v
            return any(sub in s for sub in subs)
        if isinstance(v, list | tuple):
            return any(member(item) is True for item in v)
        return None

    return test


# --------------------------------------------------------------------------------------------
# string prefix / suffix / regex


def _build_affix(method: str) -> Callable[[Sequence[Any], bool], Test]:
    def build(values: Sequence[Any], ci: bool) -> Test:
        affixes = tuple(s.casefold() if ci else s for s in _strings(values))
        check = getattr(str, method)

        def test(v: Any) -> bool | None:
            if not isinstance(v, str):
                return None
            return bool(check(v.casefold() if ci else v, affixes))

        return test

    return build


def _build_matches(values: Sequence[Any], ci: bool) -> Test:
    """Python ``re`` patterns run by RE2 in linear time (regex.py has the contract)."""
    searches = []
    for i, source in enumerate(_strings(values)):
        if len(source) > MAX_REGEX_LENGTH:
            raise ValueProblem(i, f"regex longer than {MAX_REGEX_LENGTH} characters")
        try:
            searches.append(compile_search(source, ci))
        except RegexProblem as exc:
            raise ValueProblem(i, exc.message) from None
    if len(searches) == 1:
        only = searches[0]

        def test_one(v: Any) -> bool | None:
            if not isinstance(v, str):
                return None
            return only(v)

        return test_one
    every = tuple(searches)

    def test(v: Any) -> bool | None:
        if not isinstance(v, str):
            return None
        for search in every:
            found = search(v)
            if found is None:
                return None  # too long or not UTF-8: the same answer for every pattern
            if found:
                return True
        return False

    return test


# --------------------------------------------------------------------------------------------
# numeric comparison. Several values: "any value holds", which reduces to one bound.


def _build_numeric(op: str) -> Callable[[Sequence[Any], bool], Test]:
    compare = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}[op]

    def build(values: Sequence[Any], ci: bool) -> Test:
        nums = _numbers(values)
        bound = max(nums) if op in ("lt", "lte") else min(nums)

        def test(v: Any) -> bool | None:
            t = type(v)
            if t is int or t is float or _is_number(v):
                return bool(compare(v, bound))
            return None

        return test

    return build


# --------------------------------------------------------------------------------------------
# semver (strict SemVer 2.0.0)

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

SemverKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def parse_semver(text: str) -> SemverKey | None:
    """A sort key with SemVer 2.0.0 precedence, or None if ``text`` is not strict SemVer
    (or longer than ``MAX_SEMVER_LENGTH``).

    A release sorts above its pre-releases (the 4th item: 1 for release, 0 for pre-release);
    numeric identifiers sort below alphanumeric ones; build metadata is ignored.
    """
    if len(text) > MAX_SEMVER_LENGTH:
        return None
    m = _SEMVER.match(text)
    if m is None:
        return None
    major, minor, patch, pre, _build = m.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


def _build_semver(op: str) -> Callable[[Sequence[Any], bool], Test]:
    def build(values: Sequence[Any], ci: bool) -> Test:
        keys = []
        for i, v in enumerate(_strings(values)):
            key = parse_semver(v)
            if key is None:
                raise ValueProblem(i, f"not a SemVer 2.0.0 version: {v!r}")
            keys.append(key)
        exact = frozenset(keys)
        hi, lo = max(keys), min(keys)

        def test(v: Any) -> bool | None:
            if not isinstance(v, str):
                return None
            k = parse_semver(v)
            if k is None:
                return None
            if op == "semver_eq":
                return k in exact
            if op == "semver_lt":
                return k < hi
            if op == "semver_lte":
                return k <= hi
            if op == "semver_gt":
                return k > lo
            return k >= lo

        return test

    return build


# --------------------------------------------------------------------------------------------
# dates


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from an ISO-8601 string with an offset (or an aware datetime).

    Naive values are unusable: comparing a wall-clock time without a zone against an instant
    would silently depend on the server's zone.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return None
    return dt


def _build_date(op: str) -> Callable[[Sequence[Any], bool], Test]:
    def build(values: Sequence[Any], ci: bool) -> Test:
        dates = []
        for i, v in enumerate(_strings(values)):
            dt = parse_datetime(v)
            if dt is None:
                raise ValueProblem(i, f"not an ISO-8601 date-time with an offset: {v!r}")
            dates.append(dt)
        bound = max(dates) if op == "before" else min(dates)

        def test(v: Any) -> bool | None:
            dt = parse_datetime(v)
            if dt is None:
                return None
            return dt < bound if op == "before" else dt > bound

        return test

    return build


# --------------------------------------------------------------------------------------------
# networks


def _build_cidr(values: Sequence[Any], ci: bool) -> Test:
    networks = []
    for i, v in enumerate(_strings(values)):
        try:
            networks.append(ipaddress.ip_network(v, strict=False))
        except ValueError as exc:
            raise ValueProblem(i, f"not an IP network or address: {exc}") from None
    nets = tuple(networks)

    def test(v: Any) -> bool | None:
        if not isinstance(v, str) or len(v) > MAX_ADDRESS_LENGTH:
            return None
        try:
            addr = ipaddress.ip_address(v)
        except ValueError:
            return None
        return any(addr in net for net in nets)

    return test


# --------------------------------------------------------------------------------------------
# the table


def _table(*ops: Operator) -> dict[str, Operator]:
    return {op.name: op for op in ops}


OPERATORS: Final[dict[str, Operator]] = _table(
    Operator("eq", build=_build_eq),
    Operator("neq", build=_build_eq, negative=True),
    Operator("in", build=_build_eq),
    Operator("not_in", build=_build_eq, negative=True),
    Operator("contains", build=_build_contains),
    Operator("not_contains", build=_build_contains, negative=True),
    Operator("starts_with", build=_build_affix("startswith")),
    Operator("ends_with", build=_build_affix("endswith")),
    Operator("matches", build=_build_matches),
    Operator("lt", build=_build_numeric("lt")),
    Operator("lte", build=_build_numeric("lte")),
    Operator("gt", build=_build_numeric("gt")),
    Operator("gte", build=_build_numeric("gte")),
    Operator("semver_eq", build=_build_semver("semver_eq")),
    Operator("semver_lt", build=_build_semver("semver_lt")),
    Operator("semver_lte", build=_build_semver("semver_lte")),
    Operator("semver_gt", build=_build_semver("semver_gt")),
    Operator("semver_gte", build=_build_semver("semver_gte")),
    Operator("before", build=_build_date("before")),
    Operator("after", build=_build_date("after")),
    Operator("in_cidr", build=_build_cidr),
    Operator("exists", needs_values=False),
    Operator("not_exists", needs_values=False),
    Operator("in_segment", uses_attr=False),
    Operator("not_in_segment", uses_attr=False, negative=True),
)
