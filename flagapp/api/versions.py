"""Versions of the resources that have no version column of their own.

A flag state has a ``version`` counter (the services compare it). Flags (with their
variants), segments and environments are versioned by their history: the version is the
number of history records of the object (for a flag: of the flag and of its variants).
Every write through the services adds at least one record and an identical write adds
none, so the number grows by one or more with each change and only with a change — which is
all optimistic concurrency needs. The check runs with the object's row locked
(``select_for_update``), the same lock the services take, so two writers naming the same
version cannot both pass it (on databases with row locks; SQLite serializes writers).

Pruning history (simple-history's ``clean_old_history``) lowers these numbers; a client
holding an old version then gets a 409 and reloads, which is safe.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce

from flagapp.models import Environment, Flag, Segment, Variant

__all__ = ["VERSIONED", "annotate_version", "version_of"]


def _history_model(model: type[Model]) -> Any:
    return model.history.model  # type: ignore[attr-defined]


def _count(history_model: Any, field: str) -> Expression:
    rows = (
        history_model.objects.filter(**{field: OuterRef("pk")})
        .order_by()
        .values(field)
        .annotate(n=Count("history_id"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


#: model -> [(history model, field naming the object's pk)]
VERSIONED: dict[type[Model], list[tuple[Any, str]]] = {
    Flag: [(_history_model(Flag), "id"), (_history_model(Variant), "flag_id")],
    Segment: [(_history_model(Segment), "id")],
    Environment: [(_history_model(Environment), "id")],
}


def annotate_version(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` with an ``api_version`` annotation (one query for a whole page)."""
    parts = [_count(history, field) for history, field in VERSIONED[queryset.model]]
    expression: Any = parts[0]
    for part in parts[1:]:
        expression = expression + part
    annotated: QuerySet[Any] = queryset.annotate(api_version=expression)
    return annotated


def version_of(obj: Model) -> int:
    """The current version of ``obj``, read now (not from a stale annotation)."""
    return sum(
        history.objects.filter(**{field: obj.pk}).count() for history, field in VERSIONED[type(obj)]
    )
