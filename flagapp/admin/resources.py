"""Admin of the resources around flags: segments, environments and the read-only
published snapshots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from simple_history.admin import SimpleHistoryAdmin

from flagapp import services
from flagapp.models import (
    Environment,
    Segment,
    Snapshot,
)
from flagapp.services.segments import SegmentUsagePage

from .base import ServiceAdminMixin
from .forms import (
    EnvironmentForm,
    SegmentForm,
)
from .playground import PlaygroundURLs
from .promote import PromoteURLs
from .wording import rule_text


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
        return ["key", "used_by"] if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.insert(1, ("Where it is used", {"fields": ["used_by"]}))
        return fieldsets

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """The segment, remembering which page of its usage list was asked for
        (``?usage=N``): ``used_by`` receives only the object."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._flagapp_usage_page = _page_number(request.GET.get("usage"))
        return obj

    @admin.display(description="used by")
    def used_by(self, obj: Segment) -> str:
        """The rules using this segment, directly or through other segments (the services'
        walk, which governance uses too), a page at a time, and the segments naming it."""
        page = getattr(obj, "_flagapp_usage_page", 1)
        usage = services.segment_usage_page(
            obj.key, offset=(page - 1) * USAGE_ROWS, limit=USAGE_ROWS
        )
        return segment_usage_html(usage, reverse("admin:flagapp_segment_change", args=[obj.pk]))

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


#: Rules listed per page of a segment's usage (only those are read in full).
USAGE_ROWS = 100


def _page_number(value: Any) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def segment_usage_html(usage: SegmentUsagePage, page_url: str) -> str:
    if not usage.total and not usage.reaching:
        return "No flag or segment uses it: it can be deleted."

    pks = dict(Segment.objects.filter(key__in=usage.reaching).values_list("key", "pk"))

    def seg_link(key: str) -> str:
        if key not in pks:
            return key
        url = reverse("admin:flagapp_segment_change", args=[pks[key]])
        # underlined: in a sentence a link needs more than its colour (axe link-in-text-block)
        return format_html('<a href="{}" style="text-decoration: underline">{}</a>', url, key)

    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:flagapp_flag_change", args=[u.flag_id]),
                u.flag,
                " (archived)" if u.archived else "",
                u.environment + (" (approval needed)" if u.guarded else ""),
                rule_text({"when": u.when, "serve": u.serve}),
                mark_safe(", ".join(seg_link(v) for v in u.via)) if u.via else "directly",
            )
            for u in usage.rules
        ),
    )
    parts = [
        format_html(
            "<p>{} rule(s) of {} flag(s) in {} environment(s).</p>",
            usage.total,
            usage.flags,
            usage.environments,
        )
    ]
    if usage.rules:
        parts.append(
            format_html(
                '<div class="flagapp-table-wrap"><table class="flagapp-segment-usage">'
                '<thead><tr><th scope="col">Flag</th><th scope="col">Environment</th>'
                '<th scope="col">Rule</th><th scope="col">Through</th></tr></thead>'
                "<tbody>{}</tbody></table></div>",
                rows,
            )
        )
    if usage.total > len(usage.rules):
        parts.append(_pager(usage, page_url))
    if usage.reaching:
        parts.append(
            format_html(
                "<p>Segments that use it: {}.</p>",
                mark_safe(", ".join(seg_link(k) for k in usage.reaching)),
            )
        )
    return mark_safe("".join(parts))


def _pager(usage: SegmentUsagePage, page_url: str) -> SafeString:
    """The line under a page of the usage list: which rules are shown, of how many, and
    links to the previous and next pages (underlined: links inside a sentence)."""
    page = usage.offset // USAGE_ROWS + 1
    links = []
    link = '<a href="{}?usage={}" style="text-decoration: underline" rel="{}">{}</a>'
    if page > 1:
        links.append(format_html(link, page_url, page - 1, "prev", "\u2039 previous page"))
    if usage.offset + len(usage.rules) < usage.total:
        links.append(format_html(link, page_url, page + 1, "next", "next page \u203a"))
    return format_html(
        '<nav class="flagapp-pager" aria-label="Pages of the rules using this segment">'
        "<p>Rules {}\u2013{} of {} · {}</p></nav>",
        usage.offset + 1,
        usage.offset + len(usage.rules),
        usage.total,
        mark_safe(" · ".join(links)),
    )


@admin.register(Environment)
class EnvironmentAdmin(PromoteURLs, ServiceAdminMixin, SimpleHistoryAdmin):
    form = EnvironmentForm
    list_display = ["key", "name", "protected", "order", "latest_snapshot"]
    actions = ["promote_from"]
    change_list_template = "admin/flagapp/environment/change_list.html"

    @admin.action(description="Promote flags from the selected environment…")
    def promote_from(self, request: HttpRequest, queryset: Any) -> HttpResponseRedirect:
        source = queryset.order_by("order", "key").first()
        url = reverse("admin:flagapp_environment_promote")
        return HttpResponseRedirect(f"{url}?{urlencode({'source': source.key})}")

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
    list_select_related = ["environment"]
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
