"""Helpers shared by the resource views: ETags, schema fragments, and the versioned
create / update / delete flow of the environment, segment and flag viewsets.

The version is the resource's ``version`` column; the views hand the client's
``If-Match`` to the services as ``expected_version``, and the services apply the one
optimistic-concurrency rule (``flagapp.services._base.check_version``: stale and changing
-> 409, stale but identical -> the retry of a committed write, 200) -- the same rule the
admin and governance use."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp import services
from flagapp.api.base import FlagappAPIMixin, extend_schema
from flagapp.api.preconditions import REASON_HEADER, etag_for
from flagapp.api.serializers import ChangeRequestInfoSerializer, ConflictSerializer

__all__ = [
    "IF_MATCH",
    "REASON",
    "WRITE_RESPONSES",
    "VersionedCreateMixin",
    "VersionedDestroyMixin",
    "VersionedResourceMixin",
    "VersionedUpdateMixin",
    "resource_schema",
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


def resource_schema(
    serializer: Any,
    *,
    list_summary: str,
    retrieve_summary: str,
    create_summary: str,
    update_summary: str,
    destroy_summary: str | None = None,
) -> Any:
    """The schema annotations of a viewset built on the mixins below: the parameters and
    responses of each write are the same for every resource (they come from the shared
    flow), so only the summaries are the view's own."""
    views: dict[str, Any] = {
        "list": extend_schema(summary=list_summary),
        "retrieve": extend_schema(summary=retrieve_summary),
        "create": extend_schema(
            summary=create_summary,
            parameters=[REASON],
            responses={201: serializer, **WRITE_RESPONSES},
        ),
        "partial_update": extend_schema(
            summary=update_summary,
            parameters=[IF_MATCH, REASON],
            responses={200: serializer, **WRITE_RESPONSES},
        ),
    }
    if destroy_summary is not None:
        views["destroy"] = extend_schema(
            summary=destroy_summary,
            parameters=[IF_MATCH, REASON],
            responses={204: None, **WRITE_RESPONSES},
        )
    return extend_schema_view(**views)


def with_etag(response: Response, version: int | None) -> Response:
    if version is not None:
        response["ETag"] = etag_for(version)
    return response


class VersionedResourceMixin(FlagappAPIMixin):
    # Reading side of a versioned resource: every response to a single object carries its
    # version as an ETag, which the write mixins below check against ``If-Match``.
    #
    # Driven by class attributes so each viewset states only what differs: ``model`` (the
    # row that is locked and versioned) and ``write_fields`` (the validated fields handed to
    # the services; None hands over all of them, for a view that picks its own).
    #
    # Comments, not class docstrings, here and on the mixins below: drf-spectacular
    # publishes the first class docstring in a view's MRO as each operation's description.

    model: ClassVar[type[Model]]
    write_fields: ClassVar[tuple[str, ...] | None] = None

    def get_queryset(self) -> QuerySet[Any]:
        return self.model._default_manager.all()

    def _respond(self, obj: Model, status_code: int = status.HTTP_200_OK) -> Response:
        response = Response(self.get_serializer(obj).data, status=status_code)
        return with_etag(response, getattr(obj, "version", None))

    def _reload(self, obj: Model) -> Model:
        """``obj`` as the API shows it after a write (with its new version)."""
        reloaded: Model = self.get_queryset().get(pk=obj.pk)
        return reloaded

    def _write_data(self, validated: Any) -> dict[str, Any]:
        if self.write_fields is None:
            return dict(validated)
        return {k: v for k, v in validated.items() if k in self.write_fields}

    @staticmethod
    def _service(name: str) -> Any:
        # Looked up on the module at call time, not bound at class creation, so the
        # services stay the one place a write goes through (and can be patched in tests).
        return getattr(services, name)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(self.get_object())


class VersionedCreateMixin(VersionedResourceMixin):
    # ``POST``: validate, then ``services.<create_service>`` under governance; 201 with the
    # new object, its ETag and a Location.

    create_service: ClassVar[str]

    def _create(self, data: dict[str, Any], user: Any, reason: str) -> Any:
        return self._service(self.create_service)(actor=user, reason=reason, **data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        data = self._write_data(serializer.validated_data)
        user = request.user
        obj = self.governed(reason, lambda: self._create(data, user, reason))
        response = self._respond(self._reload(obj), status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{obj.key}/")
        return response


class VersionedUpdateMixin(VersionedResourceMixin):
    # ``PATCH``: validate, then call ``services.<update_service>`` with the expected
    # version under governance (the service locks the row and checks the version); 200
    # with the object and its new ETag.

    update_service: ClassVar[str]

    def _update(
        self, obj: Any, data: dict[str, Any], user: Any, reason: str, expected: int
    ) -> None:
        self._service(self.update_service)(
            obj, actor=user, reason=reason, expected_version=expected, **data
        )

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        expected = self.expected_version()
        data = self._write_data(serializer.validated_data)
        user = request.user

        self.governed(reason, lambda: self._update(obj, data, user, reason, expected))
        return self._respond(self._reload(obj))


class VersionedDestroyMixin(VersionedResourceMixin):
    # ``DELETE``: call ``services.<delete_service>`` with the expected version under
    # governance; 204.

    delete_service: ClassVar[str]

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        obj = self.get_object()
        reason = self.change_reason()
        expected = self.expected_version()
        user = request.user

        self.governed(
            reason,
            lambda: self._service(self.delete_service)(
                obj, actor=user, reason=reason, expected_version=expected
            ),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
