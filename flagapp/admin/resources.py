"""Admin of the resources around flags: segments, environments and the read-only
published snapshots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from flagapp import services
from flagapp.models import (
    Environment,
    Segment,
    Snapshot,
)

from .base import ServiceAdminMixin
from .forms import (
    EnvironmentForm,
    SegmentForm,
)
from .playground import PlaygroundURLs


@admin.register(Segment)
class SegmentAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    form = SegmentForm
    list_display = ["key", "name", "include_count", "exclude_count", "updated_at"]
    search_fields = ["key", "name", "description"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "key",
                    "name",
                    "description",
                    "include",
                    "exclude",
                    "conditions",
                    "version",
                ]
            },
        ),
        ("Why", {"fields": ["reason"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key"] if obj is not None else []

    @admin.display(description="included")
    def include_count(self, obj: Segment) -> int:
        return len(obj.include or [])

    @admin.display(description="excluded")
    def exclude_count(self, obj: Segment) -> int:
        return len(obj.exclude or [])

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        fields = {k: cd.get(k) for k in ("name", "description", "include", "exclude", "conditions")}
        if not change:
            return services.create_segment(
                key=cd["key"], actor=request.user, reason=cd["reason"], **fields
            )
        segment = Segment.objects.get(pk=obj.pk)
        return services.update_segment(
            segment,
            actor=request.user,
            reason=cd["reason"],
            expected_version=cd.get("version"),
            **fields,
        )


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    form = EnvironmentForm
    list_display = ["key", "name", "protected", "order", "latest_snapshot"]
    ordering = ["order", "key"]
    fieldsets = [
        (None, {"fields": ["key", "name", "protected", "order", "version"]}),
        ("Why", {"fields": ["reason"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key"] if obj is not None else []

    @admin.display(description="latest snapshot")
    def latest_snapshot(self, env: Environment) -> str:
        snap = env.snapshots.order_by("-version").first()
        return f"v{snap.version} ({snap.created_at:%Y-%m-%d %H:%M})" if snap else "-"

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        if not change:
            return services.create_environment(
                key=cd["key"],
                name=cd["name"],
                protected=cd["protected"],
                order=cd["order"],
                actor=request.user,
                reason=cd["reason"],
            )
        env = Environment.objects.get(pk=obj.pk)
        return services.update_environment(
            env,
            name=cd["name"],
            protected=cd["protected"],
            order=cd["order"],
            actor=request.user,
            reason=cd["reason"],
            expected_version=cd.get("version"),
        )


@admin.register(Snapshot)
class SnapshotAdmin(PlaygroundURLs, admin.ModelAdmin):
    """Published snapshots, read-only: what every evaluator was served. Also mounts the
    playground (``admin:flagapp_playground``), which evaluates them."""

    list_display = ["environment", "version", "etag", "created_at"]
    list_filter = ["environment"]
    fields = ["environment", "version", "etag", "created_at", "pretty_document"]
    readonly_fields = ["environment", "version", "etag", "created_at", "pretty_document"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="document")
    def pretty_document(self, obj: Snapshot) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))
