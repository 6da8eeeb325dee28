"""``ProviderConfig``: every option of ``FlagappProvider`` in one typed, validated value.

Why: the provider takes many options (docs/provider.md, "Options"); a service that builds them
from its own settings wants one object it can construct, validate, log and pass around, rather
than a long keyword call. Both forms are accepted and mean the same::

    FlagappProvider(url, key, stream=True, cache_path="/var/cache/flags.json")
    FlagappProvider(config=ProviderConfig(url=url, sdk_key=key, stream=True,
                                          cache_path="/var/cache/flags.json"))
    FlagappProvider(config=base, name="checkout")   # keywords override the config's fields

``ProviderOptions`` is the same set of fields as a ``TypedDict``, so the keyword form is type
checked too (a test keeps the two in step). Invalid values raise ``ConfigurationError`` (a
``ValueError``) naming the field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from openfeature_provider.exceptions import ConfigurationError
from openfeature_provider.transport import (
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    SdkKey,
)

if TYPE_CHECKING:
    from openfeature_provider.sources import SnapshotSource

__all__ = ["DEFAULT_NAME", "ProviderConfig", "ProviderOptions"]

DEFAULT_NAME = "flagapp"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """Every provider option with its default; see docs/provider.md for each one."""

    url: str | None = None
    sdk_key: SdkKey | None = None
    source: SnapshotSource | None = None
    cache_path: str | os.PathLike[str] | None = None
    bootstrap_path: str | os.PathLike[str] | None = None
    stream: bool = False
    poll_interval: float = 30.0
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    init_timeout: float = 5.0
    stale_after: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    stream_read_timeout: float = 60.0
    stream_fallback_after: int = 3
    stream_retry_interval: float = 300.0
    send_events: bool = True
    event_sink: Callable[..., int] | None = None
    exposure_sample_rate: float = 0.0
    event_capacity: int = 10_000
    event_batch_size: int = 500
    event_flush_interval: float = 5.0
    event_retry_base: float = 1.0
    event_max_attempts: int = 5
    send_usage: bool = True
    usage_interval: float = 60.0
    name: str = DEFAULT_NAME

    def __post_init__(self) -> None:
        if not 0.0 <= self.exposure_sample_rate <= 1.0:
            raise ConfigurationError("exposure_sample_rate", "must be between 0 and 1")
        for field in ("init_timeout", "stale_after"):
            if getattr(self, field) < 0:
                raise ConfigurationError(field, "must not be negative")
        for field in (
            "poll_interval",
            "connect_timeout",
            "read_timeout",
            "fetch_timeout",
            "backoff_base",
            "backoff_max",
            "stream_read_timeout",
            "stream_retry_interval",
            "event_flush_interval",
            "event_retry_base",
            "usage_interval",
        ):
            if not getattr(self, field) > 0:
                raise ConfigurationError(field, "must be positive")
        for field in (
            "max_response_bytes",
            "stream_fallback_after",
            "event_capacity",
            "event_batch_size",
            "event_max_attempts",
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(field, "must be an integer of at least 1")
        if self.backoff_max < self.backoff_base:
            raise ConfigurationError("backoff_max", "must not be below backoff_base")

    def replace(self, **changes: Any) -> ProviderConfig:
        """A copy with ``changes`` applied (unknown names raise TypeError naming them)."""
        return dataclasses.replace(self, **changes)


class ProviderOptions(TypedDict, total=False):
    """The keyword form of ``ProviderConfig`` (all optional), for ``**options`` typing."""

    source: SnapshotSource | None
    cache_path: str | os.PathLike[str] | None
    bootstrap_path: str | os.PathLike[str] | None
    stream: bool
    poll_interval: float
    connect_timeout: float
    read_timeout: float
    fetch_timeout: float
    max_response_bytes: int
    init_timeout: float
    stale_after: float
    backoff_base: float
    backoff_max: float
    stream_read_timeout: float
    stream_fallback_after: int
    stream_retry_interval: float
    send_events: bool
    event_sink: Callable[..., int] | None
    exposure_sample_rate: float
    event_capacity: int
    event_batch_size: int
    event_flush_interval: float
    event_retry_base: float
    event_max_attempts: int
    send_usage: bool
    usage_interval: float
    name: str
