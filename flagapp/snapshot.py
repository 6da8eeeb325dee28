"""Compatibility names for the document mapper and the publish chain.

The ORM -> format-v1 document mapping lives in :mod:`flagapp.documents` (the one mapper);
``publish``, ``latest``, ``publish_all`` and the cache keys live in :mod:`flagapp.publishing`
(the one publish chain). Both stay importable from here for callers written before the split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .documents import FORMAT_VERSION as FORMAT_VERSION
from .documents import canonical_json as canonical_json
from .documents import compile_environment as _compile_environment
from .documents import compute_etag as compute_etag
from .documents import flag_entry as flag_entry
from .documents import parse as parse
from .documents import segment_entry as segment_entry

if TYPE_CHECKING:
    from .models import Environment


def compile_environment(environment: Environment, *, version: int = 0) -> dict[str, Any]:
    """The format-v1 document of one environment: :func:`flagapp.documents.compile_environment`."""
    return _compile_environment(environment, version=version)


# Moved to flagapp.publishing (the one publish chain); still importable from here.
_MOVED = frozenset(
    {
        "DOCUMENT_CACHE_SECONDS",
        "cache_document_key",
        "cache_version_key",
        "latest",
        "publish",
        "publish_all",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from . import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
