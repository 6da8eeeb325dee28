"""flagapp's OpenFeature provider for any Python service (no Django needed).

    from openfeature import api
    from openfeature_provider import FlagappProvider

    api.set_provider(FlagappProvider(url="https://flags.example.com", sdk_key="...",
                                     cache_path="/var/cache/flagapp.json"))

Names are imported lazily: ``import openfeature_provider.engine`` must not pull in the
OpenFeature SDK or httpx, because the engine is shared with code that has neither (the Django
app's evaluation path, the CLI). See docs/provider.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "FileSource",
    "FlagappProvider",
    "FlagappProviderError",
    "FlagdExportError",
    "FlagdImportError",
    "InMemorySource",
    "InvalidSnapshot",
    "OpenTelemetryHook",
    "PollingSource",
    "ProviderConfig",
    "RateLimited",
    "ResponseTooLarge",
    "SnapshotListener",
    "SnapshotSource",
    "SourceError",
    "SourceUnavailable",
    "StreamingSource",
    "UnexpectedResponse",
]

_WHERE = {
    "FlagappProvider": "openfeature_provider.provider",
    "OpenTelemetryHook": "openfeature_provider.otel",
    "ProviderConfig": "openfeature_provider.config",
    "FileSource": "openfeature_provider.sources",
    "InMemorySource": "openfeature_provider.sources",
    "PollingSource": "openfeature_provider.sources",
    "SnapshotListener": "openfeature_provider.sources",
    "SnapshotSource": "openfeature_provider.sources",
    "StreamingSource": "openfeature_provider.sources",
    "AuthenticationError": "openfeature_provider.exceptions",
    "ConfigurationError": "openfeature_provider.exceptions",
    "FlagdExportError": "openfeature_provider.exceptions",
    "FlagdImportError": "openfeature_provider.exceptions",
    "FlagappProviderError": "openfeature_provider.exceptions",
    "InvalidSnapshot": "openfeature_provider.exceptions",
    "RateLimited": "openfeature_provider.exceptions",
    "ResponseTooLarge": "openfeature_provider.exceptions",
    "SourceError": "openfeature_provider.exceptions",
    "SourceUnavailable": "openfeature_provider.exceptions",
    "UnexpectedResponse": "openfeature_provider.exceptions",
}

if TYPE_CHECKING:
    from openfeature_provider.config import ProviderConfig
    from openfeature_provider.exceptions import (
        AuthenticationError,
        ConfigurationError,
        FlagappProviderError,
        FlagdExportError,
        FlagdImportError,
        InvalidSnapshot,
        RateLimited,
        ResponseTooLarge,
        SourceError,
        SourceUnavailable,
        UnexpectedResponse,
    )
    from openfeature_provider.otel import OpenTelemetryHook
    from openfeature_provider.provider import FlagappProvider
    from openfeature_provider.sources import (
        FileSource,
        InMemorySource,
        PollingSource,
        SnapshotListener,
        SnapshotSource,
        StreamingSource,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'openfeature_provider' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
