"""``/api/v1/flags/``: flags with their variants (and a summary of their states)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, Prefetch, QuerySet
from rest_framework import mixins, viewsets

from flagapp import services
from flagapp.api.filters import FlagFilter
from flagapp.api.serializers import FlagSerializer
from flagapp.api.versions import annotate_version
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
    # Create and update are more than one service call (archive, variants), so this
    # view overrides the mixins' ``_create`` / ``_update`` steps; the validation, version
    # check, locking, governance and responses stay the shared ones.

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
        return annotate_version(
            Flag.objects.select_related("owner").prefetch_related(
                "variants", Prefetch("states", queryset=states)
            )
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
        if "variants" in data:
            data["variants"] = [dict(v) for v in data["variants"]]
        flag = services.create_flag(actor=user, reason=reason, **data)
        if archived:
            services.archive_flag(flag, actor=user, reason=reason)
        return flag

    def _update(self, locked: Flag, data: dict[str, Any], user: Any, reason: str) -> None:
        archived = data.get("archived")
        if archived is False and locked.archived:
            locked = services.unarchive_flag(locked, actor=user, reason=reason)
        fields = {k: data[k] for k in _DESCRIPTIVE if k in data}
        if "key" in data:
            fields["key"] = data["key"]
        if "kind" in data:
            fields["kind"] = data["kind"]
        if fields:
            locked = services.update_flag(locked, actor=user, reason=reason, **fields)
        if "variants" in data:
            services.set_variants(
                locked, [dict(v) for v in data["variants"]], actor=user, reason=reason
            )
        if archived is True and not locked.archived:
            services.archive_flag(locked, actor=user, reason=reason)
