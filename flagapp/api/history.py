"""The history endpoint's data: every recorded change of the flag configuration, newest
first, as one list.

simple-history keeps one table per model. The list is a ``UNION ALL`` of those tables,
each reduced to the row identity (date, id, kind), filtered *before* the union (so indexes
on the object ids and dates are used) and ordered and paginated in the database; the
readable columns are then read for the rows of that page only. Keys are read from the
history tables themselves, so the changes of a deleted flag stay listed under its key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import CharField, F, OuterRef, QuerySet, Subquery, Value

from flagapp.models import Environment, Flag, FlagState, Segment, TargetingRule, Variant

__all__ = ["COLUMNS", "history_queryset", "page_entries", "present"]

COLUMNS = (
    "history_id",
    "history_date",
    "history_type",
    "history_change_reason",
    "username",
    "model",
    "object_id",
    "flag_key",
    "environment_key",
    "detail",
)

_ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}


def _h(model: Any) -> Any:
    return model.history.model


def _key_of(history_model: Any, id_field: str) -> Subquery:
    """The key of the object ``id_field`` points to, from its history (survives deletion)."""
    return Subquery(
        history_model.objects.filter(id=OuterRef(id_field)).order_by().values("key")[:1],
        output_field=CharField(),
    )


def _state_part(field: str, state_field: str) -> Subquery:
    """flag or environment key of a historical rule's state."""
    target = _h(Flag) if field == "flag_id" else _h(Environment)
    inner = _h(FlagState).objects.filter(id=OuterRef(state_field)).order_by()
    inner = inner.annotate(k=_key_of(target, field)).values("k")[:1]
    return Subquery(inner, output_field=CharField())


def _null() -> Value:
    return Value(None, output_field=CharField())


def _parts() -> dict[str, tuple[Any, dict[str, Any]]]:
    """model name -> (history model, column expressions)."""
    return {
        "environment": (
            _h(Environment),
            {"flag_key": _null(), "environment_key": F("key"), "detail": F("key")},
        ),
        "flag": (_h(Flag), {"flag_key": F("key"), "environment_key": _null(), "detail": F("key")}),
        "variant": (
            _h(Variant),
            {
                "flag_key": _key_of(_h(Flag), "flag_id"),
                "environment_key": _null(),
                "detail": F("key"),
            },
        ),
        "flagstate": (
            _h(FlagState),
            {
                "flag_key": _key_of(_h(Flag), "flag_id"),
                "environment_key": _key_of(_h(Environment), "environment_id"),
                "detail": _null(),
            },
        ),
        "targetingrule": (
            _h(TargetingRule),
            {
                "flag_key": _state_part("flag_id", "state_id"),
                "environment_key": _state_part("environment_id", "state_id"),
                "detail": F("rule_id"),
            },
        ),
        "segment": (
            _h(Segment),
            {"flag_key": _null(), "environment_key": _null(), "detail": F("key")},
        ),
    }


def _ids(model: Any, key: str) -> QuerySet[Any]:
    """Ids of every object that ever had ``key`` (from its history, so deleted ones too)."""
    ids: QuerySet[Any] = _h(model).objects.filter(key=key).order_by().values("id").distinct()
    return ids


def _scope(name: str, qs: QuerySet[Any], flag: str | None, env: str | None) -> QuerySet[Any]:
    """Restrict one history table to a flag and/or an environment, by object ids."""
    if flag is not None:
        flag_ids = _ids(Flag, flag)
        if name == "flag":
            qs = qs.filter(id__in=flag_ids)
        elif name in ("variant", "flagstate"):
            qs = qs.filter(flag_id__in=flag_ids)
        elif name == "targetingrule":
            states = _h(FlagState).objects.filter(flag_id__in=flag_ids).order_by().values("id")
            qs = qs.filter(state_id__in=states)
        else:
            return qs.none()
    if env is not None:
        env_ids = _ids(Environment, env)
        if name == "environment":
            qs = qs.filter(id__in=env_ids)
        elif name == "flagstate":
            qs = qs.filter(environment_id__in=env_ids)
        elif name == "targetingrule":
            states = (
                _h(FlagState).objects.filter(environment_id__in=env_ids).order_by().values("id")
            )
            qs = qs.filter(state_id__in=states)
        else:
            return qs.none()
    return qs


def history_queryset(filters: Mapping[str, Any], models: list[str]) -> QuerySet[Any] | None:
    """The filtered, ordered union of the history tables named in ``models`` as slim
    ``(history_date, history_id, model)`` rows (None when nothing can match).

    Only the row identities are unioned, sorted and paginated; the readable columns (keys,
    user names) are read for the rows of one page by :func:`page_entries`, so the cost of a
    page does not grow with the size of the history.
    """
    wanted = [m for m in models if m in set(filters.get("model") or models)]
    parts = []
    user_model = get_user_model()
    for name, (history_model, _columns) in _parts().items():
        if name not in wanted:
            continue
        qs = history_model.objects.order_by()
        qs = _scope(name, qs, filters.get("flag") or None, filters.get("environment") or None)
        if filters.get("user"):
            qs = qs.filter(
                history_user_id__in=user_model._default_manager.filter(
                    **{user_model.USERNAME_FIELD: filters["user"]}
                ).values("pk")
            )
        if filters.get("since"):
            qs = qs.filter(history_date__gte=filters["since"])
        if filters.get("until"):
            qs = qs.filter(history_date__lt=filters["until"])
        qs = qs.annotate(model=Value(name, output_field=CharField())).values_list(
            "history_date", "history_id", "model"
        )
        parts.append(qs)
    if not parts:
        return None
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    ordered: QuerySet[Any] = union.order_by("-history_date", "-history_id", "model")
    return ordered


def page_entries(rows: Sequence[tuple[Any, int, str]]) -> list[dict[str, Any]]:
    """The API entries of one page of :func:`history_queryset` rows, in the same order
    (one query per kind of object on the page)."""
    by_model: dict[str, list[int]] = {}
    for _date, history_id, model in rows:
        by_model.setdefault(model, []).append(history_id)
    user_model = get_user_model()
    parts = _parts()
    found: dict[tuple[str, int], tuple[Any, ...]] = {}
    for model, ids in by_model.items():
        history_model, columns = parts[model]
        values = (
            history_model.objects.filter(history_id__in=ids)
            .order_by()
            .annotate(
                username=F(f"history_user__{user_model.USERNAME_FIELD}"),
                model=Value(model, output_field=CharField()),
                object_id=F("id"),
                **columns,
            )
            .values_list(*COLUMNS)
        )
        for row in values:
            found[(model, row[0])] = row
    return [present(found[(m, hid)]) for _d, hid, m in rows if (m, hid) in found]


def present(row: tuple[Any, ...]) -> dict[str, Any]:
    """One union row as the API's history entry."""
    r = dict(zip(COLUMNS, row, strict=True))
    model, flag_key, env_key, detail = (
        r["model"],
        r["flag_key"],
        r["environment_key"],
        r["detail"],
    )
    if model == "variant":
        label = f"{flag_key}:{detail}"
    elif model == "flagstate":
        label = f"{flag_key}@{env_key}"
    elif model == "targetingrule":
        label = f"{flag_key}@{env_key}#{detail}"
    else:
        label = str(detail)
    return {
        "id": f"{model}:{r['history_id']}",
        "model": model,
        "object_id": r["object_id"],
        "object": label,
        "flag": flag_key,
        "environment": env_key,
        "action": _ACTIONS.get(r["history_type"], r["history_type"]),
        "date": r["history_date"],
        "user": r["username"],
        "reason": r["history_change_reason"],
    }
