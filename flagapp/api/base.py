"""What every management-API view shares: authentication, permissions, pagination,
filtering, error mapping and the schema generator.

Configured on the views rather than in ``REST_FRAMEWORK`` so the API behaves the same in any
host project, whatever its global DRF defaults are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema as _spectacular_extend_schema
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed, ParseError, ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.settings import api_settings

from flagapp.exceptions import ApprovalRequired

from .errors import ChangeProposed, exception_handler
from .permissions import ModelPermissions
from .preconditions import change_reason, expected_version

__all__ = [
    "ApiTokenAuthentication",
    "FlagappAPIMixin",
    "Pagination",
    "change_request_info",
    "extend_schema",
]

T = TypeVar("T")


def extend_schema(**kwargs: Any) -> Callable[[Any], Any]:
    """drf-spectacular's ``extend_schema``, based on its ``AutoSchema`` whatever the host
    project's ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` says.

    Why: drf-spectacular builds the schema class of a decorated view method when the
    decorator runs, from ``DEFAULT_SCHEMA_CLASS`` unless the method already names one.
    A project configured as the README says (no ``DEFAULT_SCHEMA_CLASS``: DRF's own
    default) then answered ``/api/schema/`` with a 500. The classes' ``schema`` attribute
    (:class:`FlagappAPIMixin`) covers the rest; this covers the methods.
    """
    decorate = _spectacular_extend_schema(**kwargs)

    def decorator(f: Any) -> Any:
        if callable(f) and not isinstance(f, type) and not hasattr(f, "cls"):
            if not hasattr(f, "kwargs"):
                f.kwargs = {}
            f.kwargs.setdefault("schema", AutoSchema)
        return decorate(f)

    return decorator


def _nul_field(data: Any, field: str | None = None, depth: int = 0) -> str | None:
    """The top-level field of ``data`` holding a NUL character anywhere inside, or None."""
    if depth > 50:
        return None
    if isinstance(data, str):
        return (field or api_settings.NON_FIELD_ERRORS_KEY) if "\x00" in data else None
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = field if field is not None else str(key)
            if "\x00" in str(key):
                return name
            found = _nul_field(value, name, depth + 1)
            if found is not None:
                return found
    elif isinstance(data, list | tuple):
        for value in data:
            found = _nul_field(value, field, depth + 1)
            if found is not None:
                return found
    return None


def change_request_info(cr: Any) -> dict[str, Any]:
    """What a 202 says about the change request that now holds the change."""
    author = getattr(cr, "author", None)
    created = getattr(cr, "created_at", None)
    return {
        "id": cr.pk,
        "status": getattr(cr, "status", None),
        "kind": getattr(cr, "kind", None),
        "flag": getattr(cr, "flag_key", None) or None,
        "environment": getattr(cr, "environment_key", None) or None,
        "base_version": getattr(cr, "base_version", None),
        "author": getattr(author, "username", None),
        "created_at": created.isoformat() if created is not None else None,
        "blast_radius": getattr(cr, "blast_radius", None),
    }


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token fapi_...`` (or ``Bearer fapi_...``): a flagapp API token.

    Tokens are stored hashed (``flagapp.models.ApiToken``, created with ``manage.py
    flagapp_api_token create``) and checked on every request, so revoking one takes effect
    at once. A revoked token, an unknown one and an inactive user are the same 401.
    """

    keywords = (b"token", b"bearer")

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: expected 'Token <token>'.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.")
        from . import tokens

        row = tokens.authenticate(token)
        if row is None or not row.user.is_active:
            raise AuthenticationFailed("Invalid or revoked token.")
        return row.user, row

    def authenticate_header(self, request: Any) -> str:
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of :class:`ApiTokenAuthentication` (same name as DRF's)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A flagapp API token with the prefix "Token": '
            "`Authorization: Token fapi_...` (manage.py flagapp_api_token create).",
        }


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 500 a page), with ``count``/``next``/``previous``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, but JSON nested too deep for Python's parser (RecursionError,
    e.g. 5,000 levels) is a 400 parse error, not a 500."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deep") from None


if TYPE_CHECKING:
    _MixinBase = GenericAPIView[Any]
else:
    _MixinBase = object


class FlagappAPIMixin(_MixinBase):
    """Mixed into every view of the management API (before the DRF base class)."""

    # Token first: its WWW-Authenticate header turns "no credentials" into a 401, which a
    # client can act on, where SessionAuthentication alone would answer 403.
    authentication_classes: Sequence[type[BaseAuthentication]] = [
        ApiTokenAuthentication,
        SessionAuthentication,
    ]
    permission_classes: Sequence[Any] = [IsAuthenticated, ModelPermissions]
    parser_classes: Sequence[Any] = [BoundedJSONParser, FormParser, MultiPartParser]
    pagination_class: type[BasePagination] | None = Pagination
    filter_backends: Sequence[Any] = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    schema: ViewInspector | None = AutoSchema()
    #: Objects without a natural key are addressed by their integer id: any other path
    #: segment is a 404 from the router, never a failed integer conversion (500) in a view.
    #: Views keyed by a natural key override this (flag keys contain dots: ``[^/]+``).
    lookup_value_regex = "[0-9]+"
    #: Per-method permission overrides read by :class:`ModelPermissions`.
    required_permissions: dict[str, list[str]] = {}

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        return exception_handler

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # After authentication and permissions: an anonymous request is a 401, whatever
            # its body. NUL characters cannot be stored (PostgreSQL refuses them in text and
            # JSON); refuse them here, as a field error, wherever they are in the body.
            field = _nul_field(request.data)
            if field is not None:
                raise ValidationError({field: ["Null characters are not allowed."]})

    def change_reason(self) -> str:
        return change_reason(self.request)

    def expected_version(self) -> int:
        return expected_version(self.request)

    def governed(self, reason: str, write: Callable[[], T]) -> T:
        """Run ``write`` in one transaction; when the services say it needs approval,
        nothing is written and a change request is proposed with the same reason
        (answered 202 by the exception handler)."""
        try:
            with transaction.atomic():
                return write()
        except ApprovalRequired as exc:
            from flagapp.governance import change_requests

            cr = change_requests.propose_from(exc, author=self.request.user, reason=reason)
            raise ChangeProposed(exc, change_request_info(cr)) from exc
