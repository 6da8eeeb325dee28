"""JSON shape checks shared by validate.py and delta.py: each raises ``ParseError`` naming
the JSON path of what is wrong (``_object``, ``_array``, ``_string``, ``_keys`` ...), and
``_at`` builds those paths. Split from validate.py (the format's rules).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .exceptions import ParseError
from .limits import MAX_OBJECT_DEPTH
from .operators import json_type, number_problem


def _at(path: str, key: str) -> str:
    quoted = json.dumps(key, ensure_ascii=False)
    if not quoted.isascii():
        try:
            quoted.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape it, so the path is printable
            quoted = json.dumps(key)
    return f"{path}[{quoted}]"


def _fail_type(path: str, expected: str, value: Any) -> NoReturn:
    raise ParseError(path, f"expected {expected}, got {json_type(value)}")


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail_type(path, "an object", value)
    for k in value:
        if not isinstance(k, str):
            raise ParseError(path, f"object keys must be strings, got {k!r}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail_type(path, "an array", value)
    return list(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        _fail_type(path, "a string", value)
    return value


def _utf8(value: str, path: str, what: str) -> str:
    """``value`` unchanged if it has a UTF-8 form (what bucketing hashes); a lone surrogate
    (JSON ``"\\ud800"``) has none."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError(
            path, f"{what} is not valid Unicode text (UTF-8 cannot encode a lone surrogate)"
        ) from None
    return value


def _string_list(value: Any, path: str) -> list[str]:
    items = _array(value, path)
    for i, item in enumerate(items):
        _string(item, f"{path}[{i}]")
    return items


def _integer(value: Any, path: str) -> int:
    if type(value) is not int:
        _fail_type(path, "an integer", value)
    return value


def _number(value: int | float, path: str) -> None:
    problem = number_problem(value)
    if problem is not None:
        raise ParseError(path, problem)


def _json_value(value: Any, path: str) -> None:
    """An object/array variant: JSON values only, finite numbers within signed 64-bit,
    strings and keys with a UTF-8 form (it is served as JSON), at most ``MAX_OBJECT_DEPTH``
    containers deep. Iterative, so no depth raises RecursionError;
    the error names the first offending location in document order."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            _utf8(node, where, "a served string")
            continue
        if isinstance(node, bool) or node is None:
            continue
        if isinstance(node, int | float):
            _number(node, where)
            continue
        if depth > MAX_OBJECT_DEPTH:
            raise ParseError(
                where, f"nested deeper than {MAX_OBJECT_DEPTH} levels of objects and arrays"
            )
        if isinstance(node, Mapping):
            items = list(node.items())
            for k, _ in items:
                if not isinstance(k, str):
                    raise ParseError(where, f"object keys must be strings, got {k!r}")
                _utf8(k, where, "an object key (it is served)")
            stack.extend((v, _at(where, k), depth + 1) for k, v in reversed(items))
        elif isinstance(node, list | tuple):
            stack.extend(
                (v, f"{where}[{i}]", depth + 1) for i, v in reversed(list(enumerate(node)))
            )
        else:
            raise ParseError(where, f"not a JSON value: {type(node).__name__}")


def _finite_number(value: Any) -> bool:
    """A JSON number that is not NaN/Infinity (which Python's json module accepts)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True  # math.isfinite() would overflow on huge ints
    return isinstance(value, float) and math.isfinite(value)


def _keys(obj: Mapping[str, Any], path: str, allowed: set[str], required: Sequence[str]) -> None:
    for key in required:
        if key not in obj:
            raise ParseError(path, f"missing key {key!r}")
    for key in obj:
        if key not in allowed:
            raise ParseError(_at(path, key), f"unknown key {key!r}")
