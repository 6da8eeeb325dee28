"""Reading the change reason and the edited version from a request.

A write names *why* (a reason, recorded in the history) and *what it edits* (the version the
client read). Both can come from headers (``X-Change-Reason``, ``If-Match``) so that a client
can send a resource body unchanged, or from body fields (``reason``, ``version``) for clients
that cannot set headers or need a non-Latin-1 reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request

__all__ = [
    "REASON_HEADER",
    "PreconditionRequired",
    "change_reason",
    "etag_for",
    "expected_version",
]

REASON_HEADER = "X-Change-Reason"
# Versions are compared in the database: keep them inside a signed 64-bit column.
_MAX_VERSION = 2**62
_IF_MATCH_ITEM = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')


class PreconditionRequired(APIException):
    """428: a write that did not say which version it edits (RFC 6585).

    Without a version a late write would silently overwrite a change the client never saw;
    refusing is the only way to keep "nothing lost" true.
    """

    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = (
        'This write must name the version it edits: send If-Match: "<version>" '
        "or a 'version' field."
    )
    default_code = "precondition_required"


def etag_for(version: int) -> str:
    """The strong ETag of a resource at ``version`` (quoted, as HTTP wants it)."""
    return f'"{version}"'


def _body(request: Request) -> Mapping[str, Any]:
    data = request.data
    return data if isinstance(data, Mapping) else {}


def _utf8(header: str) -> str:
    """HTTP headers reach Django decoded as Latin-1; a client that sent UTF-8 (the common
    case for a reason typed by a person) gets its text back, anything else is kept as is."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return header


def change_reason(request: Request) -> str:
    """The reason for this write, or a 400 naming the ``reason`` field when there is none."""
    header = _utf8(request.headers.get(REASON_HEADER, ""))
    body_value = _body(request).get("reason")
    reason = header.strip()
    if not reason and isinstance(body_value, str):
        reason = body_value.strip()
    if not reason:
        raise ValidationError(
            {"reason": [f"A change reason is required ({REASON_HEADER} header or 'reason')."]}
        )
    if "\x00" in reason:
        raise ValidationError({"reason": ["Null characters are not allowed."]})
    return reason


def expected_version(request: Request) -> int:
    """The version the client edits, from ``If-Match`` or a ``version`` body field.

    Raises 428 when neither is given, 400 when one is malformed or when both are given and
    disagree (a client bug that must not be resolved by guessing).
    """
    header_version: int | None = None
    header = request.headers.get("If-Match")
    if header is not None:
        items = [item for item in header.split(",") if item.strip()]
        match = _IF_MATCH_ITEM.match(items[0]) if len(items) == 1 else None
        if match is None:
            raise ValidationError(
                {"version": ['If-Match must carry exactly one version, e.g. If-Match: "3".']}
            )
        header_version = int(match.group(1))
    raw = _body(request).get("version")
    body_version: int | None = None
    if raw is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValidationError({"version": ["A version is a non-negative integer."]})
        try:
            body_version = int(raw)
        except ValueError:
            raise ValidationError({"version": ["A version is a non-negative integer."]}) from None
        if not 0 <= body_version <= _MAX_VERSION:
            raise ValidationError({"version": ["A version is a non-negative integer."]})
    if header_version is not None and body_version is not None and header_version != body_version:
        raise ValidationError({"version": ["If-Match and the 'version' field disagree."]})
    version = header_version if header_version is not None else body_version
    if version is None:
        raise PreconditionRequired()
    return version
