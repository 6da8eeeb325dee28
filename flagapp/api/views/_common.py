"""Helpers shared by the resource views: ETags, version checks, schema fragments."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.response import Response

from flagapp.api.preconditions import REASON_HEADER, etag_for
from flagapp.api.serializers import ChangeRequestInfoSerializer, ConflictSerializer
from flagapp.api.versions import version_of
from flagapp.exceptions import VersionConflict

__all__ = [
    "IF_MATCH",
    "REASON",
    "WRITE_RESPONSES",
    "check_version",
    "with_etag",
]

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description='The version this write edits, e.g. "3" (or a "version" body field).',
)
REASON = OpenApiParameter(
    REASON_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description='Why (or a "reason" body field). One of the two is required.',
)
WRITE_RESPONSES: dict[int, Any] = {
    400: OpenApiResponse(description="Field errors: {field: [messages]}."),
    403: OpenApiResponse(description="Missing a model or environment permission."),
    404: OpenApiResponse(description="No such object."),
    409: ConflictSerializer,
    202: ChangeRequestInfoSerializer,
    428: OpenApiResponse(description="No version given (If-Match or 'version')."),
}


def with_etag(response: Response, version: int | None) -> Response:
    if version is not None:
        response["ETag"] = etag_for(version)
    return response


def check_version(locked: Model, expected: int) -> int:
    """Compare the version of ``locked`` (a row locked by the caller) with ``expected``;
    raise VersionConflict (nothing written) when they differ."""
    current = version_of(locked)
    if current != expected:
        raise VersionConflict(current, expected)
    return current
