"""``/api/v1/flags/``: flags with their variants (and a summary of their states)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, Prefetch, QuerySet
from rest_framework import mixins, viewsets

from flagapp import services
from flagapp.api.filters import FlagFilter
from flagapp.api.serializers import FlagSerializer
from flagapp.models import Flag, FlagState

from ._common import (
    VersionedCreateMixin,
    VersionedDestroyMixin,
    VersionedUpdateMixin,
    resource_schema,
)

__all__ = ["FlagViewSet"]

_DESCRIPTIVE = ("name", "description", "flag_type", "owner", "risk", "expires_on", "tags")


@resource_schema(
    FlagSerializer,
    list_summary="List flags",
    retrieve_summary="A flag with its variants; ETag carries its version",
    create_summary="Create a flag (disabled in every environment)",
    update_summary="Change a flag's fields, variants or archived state",
    destroy_summary="Delete a flag (its key is never reused)",
)
class FlagViewSet(
    VersionedCreateMixin,
    VersionedUpdateMixin,
    VersionedDestroyMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[Flag],
):
    # Create and update save fields, variants and the archived state together
    # (``services.save_flag``, the admin's flag page's service too), so this view overrides
    # the mixins' ``_create`` / ``_update`` steps; validation, governance and responses stay
    # the shared ones.

    model = Flag
    write_fields = None  # every validated field: _create / _update pick their own
    delete_service = "delete_flag"
    serializer_class = FlagSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"  # flag keys contain dots
    filterset_class = FlagFilter
    search_fields = ["key", "name", "description"]
    ordering_fields = ["key", "name", "created_at", "updated_at", "expires_on"]
    ordering = ["key"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Flag]:
        states = FlagState.objects.select_related("environment")
        return Flag.objects.select_related("owner").prefetch_related(
            "variants", Prefetch("states", queryset=states)
        )

    def _reload(self, obj: Model) -> Model:
        # By key, as this view always has (the object read before the write).
        assert isinstance(obj, Flag)
        return self.get_queryset().get(key=obj.key)

    def _create(self, data: dict[str, Any], user: Any, reason: str) -> Flag:
        data = dict(data)
        data.pop("reason", None)
        data.pop("version", None)
        archived = data.pop("archived", False)
        variants = [dict(v) for v in data.pop("variants")] if "variants" in data else None
        return services.save_flag(
            None, actor=user, reason=reason, variants=variants, archived=archived, **data
        )

    def _update(
        self, obj: Flag, data: dict[str, Any], user: Any, reason: str, expected: int
    ) -> None:
        fields = {k: data[k] for k in (*_DESCRIPTIVE, "key", "kind") if k in data}
        extra: dict[str, Any] = {}
        if "variants" in data:
            extra["variants"] = [dict(v) for v in data["variants"]]
        if "archived" in data:
            extra["archived"] = data["archived"]
        services.save_flag(
            obj, actor=user, reason=reason, expected_version=expected, **extra, **fields
        )
