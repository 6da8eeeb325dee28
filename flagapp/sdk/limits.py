"""Limits checked before work, and strict bounded JSON, for the SDK/OFREP/events endpoints.

Why here and first: a request body is refused from its ``Content-Length`` before the body is
read and before the SDK key is looked up, so a flood of large bodies (with or without a
valid key) costs a header comparison. The ASGI fast path (``flagapp.asgi``) applies the same
caps before it reads a body and while it reads a chunked one; the views apply them again for
deployments without the fast path (WSGI, or Django's own ASGI handler).

JSON: Python's parser accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON; PostgreSQL's
``jsonb`` refuses them later, far from the cause), reads ``1e400`` as infinity, and raises
``RecursionError`` on very deep documents. :func:`loads` marks every non-finite number with
:class:`NonFinite` (so a caller can reject exactly the event or field that carries one),
turns deep nesting into :class:`JsonError`, and :func:`find_problem` walks a value with a
depth bound and names the first field that cannot be stored: a non-finite number, a NUL
character (PostgreSQL text refuses it), a lone surrogate (no UTF-8 form), or nesting
deeper than ``SDK_JSON_MAX_DEPTH``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest, HttpResponse

from flagapp.conf import settings

__all__ = [
    "JsonError",
    "NonFinite",
    "body_cap",
    "declared_too_large",
    "find_problem",
    "loads",
    "read_capped",
    "too_large_response",
]

EVENTS_PATH = "/sdk/v1/events"


class JsonError(ValueError):
    """The body is not acceptable JSON (not JSON at all, or nested too deeply)."""


class NonFinite:
    """Stands in for ``NaN`` / ``Infinity`` / ``-Infinity`` / an overflowing number."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; non-finite numbers become :class:`NonFinite`; deep nesting raises
    :class:`JsonError` (never RecursionError)."""
    try:
        return json.loads(raw, parse_constant=NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise JsonError("JSON nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonError(f"not JSON: {exc}") from exc


def max_depth() -> int:
    return int(settings.SDK_JSON_MAX_DEPTH)


def find_problem(value: Any, path: str, limit: int | None = None) -> tuple[str, str] | None:
    """``(field, message)`` of the first part of ``value`` that must not be stored or
    evaluated, or None. ``path`` names ``value`` itself (``"context"``, ``"events[3]"``)."""
    bound = max_depth() if limit is None else limit
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, NonFinite):
            return where, f"{item.text} is not a JSON number (NaN and Infinity are not allowed)"
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return where, problem
            continue
        if isinstance(item, dict | list):
            if depth >= bound:
                return where, f"nested too deep (more than {bound} levels)"
            if isinstance(item, dict):
                for key, child in reversed(list(item.items())):
                    problem = _text_problem(key)
                    if problem is not None:
                        named = f"{where}.{_printable(key)}" if where else _printable(key)
                        return named, f"a field name {problem}"
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
            else:
                for index in range(len(item) - 1, -1, -1):
                    stack.append((item[index], f"{where}[{index}]", depth + 1))
    return None


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (PostgreSQL refuses NUL; a lone surrogate, which JSON's
    ``\\udXXX`` escapes can produce, has no UTF-8 form), or None."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _printable(text: str) -> str:
    """``text`` with what has no UTF-8 form escaped (``\\udafb``), for error messages."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def body_cap(path: str) -> tuple[int, str]:
    """The body cap of an SDK path and the setting that sets it."""
    if path.startswith(EVENTS_PATH):
        return int(settings.EVENTS_MAX_BODY_BYTES), "EVENTS_MAX_BODY_BYTES"
    return int(settings.SDK_MAX_BODY_BYTES), "SDK_MAX_BODY_BYTES"


def too_large_body(cap: int, setting: str) -> bytes:
    detail = f"body larger than {setting} ({cap} bytes)"
    return json.dumps(
        {"errorCode": "GENERAL", "errorDetails": detail, "errors": [detail]},
        separators=(",", ":"),
    ).encode()


def too_large_response(cap: int, setting: str) -> HttpResponse:
    return HttpResponse(too_large_body(cap, setting), content_type="application/json", status=413)


def declared_too_large(request: HttpRequest) -> HttpResponse | None:
    """413 when the declared ``Content-Length`` is over the path's cap (nothing read)."""
    cap, setting = body_cap(request.path)
    length = request.headers.get("Content-Length")
    try:
        declared = int(length) if length else 0
    except ValueError:
        declared = 0
    if declared > cap:
        return too_large_response(cap, setting)
    return None


def read_capped(request: HttpRequest) -> bytes | HttpResponse:
    """The body, read up to the path's cap; a 413 response when it is longer."""
    cap, setting = body_cap(request.path)
    refused = declared_too_large(request)
    if refused is not None:
        return refused
    body = request.read(cap + 1)
    if len(body) > cap:
        return too_large_response(cap, setting)
    return body
