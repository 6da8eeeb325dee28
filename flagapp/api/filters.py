"""django-filter filter sets of the list endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from flagapp.models import Environment, Flag, FlagKind, FlagType, Risk, Segment
from flagapp.models.sdk import SdkKey

__all__ = [
    "HISTORY_MODELS",
    "EnvironmentFilter",
    "FlagFilter",
    "HistoryFilter",
    "SdkKeyFilter",
    "SegmentFilter",
]


class FlagFilter(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__name", help_text="Owner group name.")
    kind = django_filters.ChoiceFilter(choices=FlagKind.choices)
    flag_type = django_filters.ChoiceFilter(choices=FlagType.choices)
    risk = django_filters.ChoiceFilter(choices=Risk.choices)
    archived = django_filters.BooleanFilter()
    tag = django_filters.CharFilter(method="filter_tag", help_text="Flags carrying this tag.")
    expired = django_filters.BooleanFilter(
        method="filter_expired", help_text="Expiry date in the past (true) or not (false)."
    )
    enabled_in = django_filters.CharFilter(
        method="filter_enabled_in", help_text="Flags enabled in this environment (key)."
    )

    class Meta:
        model = Flag
        fields: list[str] = []

    def filter_tag(self, queryset: QuerySet[Flag], name: str, value: str) -> QuerySet[Flag]:
        if connection.features.supports_json_field_contains:
            return queryset.filter(tags__contains=[value])
        # SQLite has no JSON containment: match the quoted string inside the stored list,
        # then confirm in Python (a tag may contain characters that JSON escapes).
        candidates = queryset.filter(tags__icontains=value)
        return queryset.filter(pk__in=[f.pk for f in candidates if value in (f.tags or [])])

    def filter_expired(self, queryset: QuerySet[Flag], name: str, value: bool) -> QuerySet[Flag]:
        past = Q(expires_on__lt=timezone.localdate())
        return queryset.filter(past) if value else queryset.exclude(past)

    def filter_enabled_in(self, queryset: QuerySet[Flag], name: str, value: str) -> QuerySet[Flag]:
        return queryset.filter(states__environment__key=value, states__enabled=True)


class SegmentFilter(django_filters.FilterSet):
    class Meta:
        model = Segment
        fields: list[str] = []


class EnvironmentFilter(django_filters.FilterSet):
    protected = django_filters.BooleanFilter()

    class Meta:
        model = Environment
        fields: list[str] = []


class SdkKeyFilter(django_filters.FilterSet):
    environment = django_filters.CharFilter(field_name="environment__key")
    active = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull")

    class Meta:
        model = SdkKey
        fields: list[str] = []


#: The models whose history the history endpoint shows, by their API name.
HISTORY_MODELS = ("environment", "flag", "variant", "flagstate", "targetingrule", "segment")


class HistoryFilter(django_filters.FilterSet):
    """Parses and validates the history endpoint's query; :mod:`flagapp.api.history`
    applies it to each history table."""

    flag = django_filters.CharFilter(help_text="A flag key (also deleted flags).")
    environment = django_filters.CharFilter(help_text="An environment key.")
    user = django_filters.CharFilter(help_text="The username of who made the change.")
    since = django_filters.IsoDateTimeFilter(help_text="Changes at or after (ISO 8601).")
    until = django_filters.IsoDateTimeFilter(help_text="Changes before (ISO 8601).")
    model = django_filters.MultipleChoiceFilter(
        choices=[(m, m) for m in HISTORY_MODELS], help_text="Only these kinds of objects."
    )

    def cleaned(self) -> dict[str, Any]:
        data = dict(self.form.cleaned_data)
        for bound in ("since", "until"):
            value = data.get(bound)
            if isinstance(value, dt.datetime) and timezone.is_naive(value):
                data[bound] = timezone.make_aware(value, dt.UTC)
        return data
