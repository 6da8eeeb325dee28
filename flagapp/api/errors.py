"""Mapping flagapp's exceptions to HTTP responses.

The services raise domain errors (``flagapp.exceptions``); this handler turns them into the
responses documented in docs/api.md, so views never translate errors one by one:

==========================  ===========================================================
``FlagValidationError``      400, ``{field: [messages]}`` (``__all__`` → ``non_field_errors``)
``VersionConflict``          409, ``{"detail", "current_version"}`` + ``ETag`` of the current
``ApprovalRequired``         202, ``{"detail", "change", "change_request"?}`` (nothing applied)
``ChangeNotPermitted``       403, ``{"detail"}``
``IntegrityError``           409, ``{"detail"}`` (a concurrent create won the unique key)
``DataError``                400, ``{"detail"}`` (a value the database cannot store)
``OperationalError``         503, ``{"detail"}`` + ``Retry-After`` (the database is down,
``InterfaceError``           restarting or its connection was lost: retry; a write retried
                             with the same body and version learns whether its first
                             attempt committed, ``services._base.check_version``)
==========================  ===========================================================
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    ChangeProposed,
    VersionConflict,
)

from .preconditions import etag_for

logger = logging.getLogger(__name__)

__all__ = ["ChangeProposed", "approval_response", "exception_handler", "validation_payload"]

#: Seconds a client is asked to wait before retrying when the database is unavailable (the
#: SDK endpoints use the same figure, ``flagapp.sdk.auth.OUTAGE_RETRY_AFTER``).
DATABASE_RETRY_AFTER = 5


def validation_payload(exc: DjangoValidationError) -> dict[str, list[str]]:
    """``{field: [messages]}`` from a Django ValidationError, DRF's way of naming
    non-field errors."""
    if hasattr(exc, "error_dict"):
        out: dict[str, list[str]] = {}
        for field, messages in exc.message_dict.items():
            name = api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field
            out.setdefault(name, []).extend(str(m) for m in messages)
        return out
    return {api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in exc.messages]}


def _json_safe(value: Any) -> Any:
    """The proposed change as JSON (model instances and dates become strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    key = getattr(value, "key", None)
    if isinstance(key, str):
        return key
    return str(value)


def approval_response(exc: ApprovalRequired, change_request: Any = None) -> Response:
    """202 Accepted: the change was not applied; it waits for an approval."""
    payload: dict[str, Any] = {"detail": str(exc), "change": _json_safe(exc.change)}
    if change_request is not None:
        payload["change_request"] = change_request
    return Response(payload, status=status.HTTP_202_ACCEPTED)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler for flagapp's API views (set per view, not globally)."""
    if isinstance(exc, VersionConflict):
        return Response(
            {"detail": str(exc), "current_version": exc.current_version},
            status=status.HTTP_409_CONFLICT,
            headers={"ETag": etag_for(exc.current_version)},
        )
    if isinstance(exc, ChangeProposed):
        return approval_response(exc.approval, exc.change_request)
    if isinstance(exc, ApprovalRequired):
        return approval_response(exc)
    if isinstance(exc, ChangeNotPermitted):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, DjangoValidationError):
        return Response(validation_payload(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError):
        # A value the database cannot store (out of range, too long, a NUL character):
        # the request's fault, and nothing was written (the write's transaction rolled back).
        return Response(
            {"detail": "The database refused a value of this request."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # Not the request's fault and not a bug: a 500 reads as one (and clients do not
        # retry it), while a 503 with Retry-After is retried. Seen after a PostgreSQL
        # restart, when a pooled connection was dead (tests/faults/test_pg_connections.py).
        # The cause goes to the log (a pool timeout and a refused connection read alike
        # to the client), without the request's data.
        logger.warning("database error in the management API: answered 503 (%s)", exc)
        return Response(
            {"detail": "The database is unavailable; retry later."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if isinstance(exc, IntegrityError):
        return Response(
            {"detail": "The change conflicts with existing data (for example a duplicate key)."},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
