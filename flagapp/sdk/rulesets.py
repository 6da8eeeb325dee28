"""The environment's current ruleset, for the async SDK views and their streams.

Its own module because both :mod:`flagapp.sdk.views` (the ruleset endpoint) and
:mod:`flagapp.sdk.streaming` (every SSE stream's first event and heartbeat check) need it,
and the views import the streams: kept in either, it would close an import cycle
(docs/internals.md, "Import cycles").
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

__all__ = ["aget_ruleset", "get_ruleset"]


def get_ruleset(env_key: str) -> Any:
    """:func:`flagapp.evaluation.get_ruleset` (this process's copy, the shared cache or the
    database), imported on call: the evaluation package loads the models."""
    from flagapp.evaluation import get_ruleset as load

    return load(env_key)


async def aget_ruleset(env_key: str) -> Any:
    """The environment's ruleset from an async view: from memory when this process's copy is
    fresh, else through :func:`get_ruleset` in a worker thread (it may read the shared cache
    or the database)."""
    from flagapp import evaluation

    if evaluation.is_warm(env_key):
        return evaluation.current_ruleset(env_key)
    return await sync_to_async(get_ruleset)(env_key)
