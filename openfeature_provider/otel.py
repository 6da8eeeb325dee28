"""OpenTelemetry ``feature_flag.evaluation`` events for the OpenFeature client (extra ``otel``).

::

    from openfeature import api
    from openfeature_provider import FlagappProvider, OpenTelemetryHook

    provider = FlagappProvider(url, key)
    api.set_provider(provider)
    api.add_hooks([OpenTelemetryHook(provider)])

Each evaluation emits one ``feature_flag.evaluation`` event following the OpenTelemetry
semantic conventions for feature flags (release candidate; OpenFeature's specification,
appendix D, maps the evaluation details onto them):

- a **log record** with ``event_name="feature_flag.evaluation"`` through the OpenTelemetry
  Logs API (the conventions' primary form; your ``LoggerProvider`` decides where it goes),
- and a **span event** of that name on the current span when one is recording, so the
  evaluation shows up inside the request's trace.

Attributes: ``feature_flag.key``, ``feature_flag.provider.name``,
``feature_flag.result.variant`` (when a variant was served), ``feature_flag.result.reason``
(lower snake case: ``static``, ``targeting_match``, ``split``, ``disabled``, ``default``,
``error``, and the custom ``prerequisite_failed``), ``feature_flag.set.id`` (the
environment of the snapshot), ``feature_flag.version`` (the snapshot version, as a string),
and on errors ``error.type`` (the OpenFeature error code in lower snake case:
``flag_not_found``, ``type_mismatch``, ``general``...) with ``feature_flag.error.message``.
Opt-in, because they can carry personal data: ``feature_flag.result.value``
(``include_value=True``) and ``feature_flag.context.id``, the targeting key
(``include_context_id=True``).

Why a hook and not code in the provider: OpenFeature hooks see every evaluation the client
makes, including its own errors (provider not ready); the same attribute builder
(:func:`evaluation_attributes`) serves ``flagapp.evaluate`` on the Django side
(``FLAGAPP["OPENTELEMETRY"]``), so both emit identical events. ``opentelemetry-api`` is
imported when a hook is created, not when this module is: the provider works without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
from openfeature.hook import Hook, HookContext, HookHints

if TYPE_CHECKING:
    from opentelemetry._logs import Logger, LoggerProvider

    from openfeature_provider.provider import FlagappProvider

__all__ = ["EVENT_NAME", "OpenTelemetryHook", "emit", "evaluation_attributes"]

#: The event name the semantic conventions require.
EVENT_NAME: Final = "feature_flag.evaluation"
_SCOPE: Final = "openfeature_provider"


def _snake(value: Any) -> str:
    """``TARGETING_MATCH`` (or the enum member) -> ``targeting_match``."""
    return str(getattr(value, "value", value)).lower()


def evaluation_attributes(
    *,
    key: str,
    provider_name: str,
    variant: str | None,
    reason: Any,
    error_code: Any,
    error_message: str | None,
    metadata: Mapping[str, Any] | None,
    set_id: str | None,
    value: Any = None,
    include_value: bool = False,
    context_id: str | None = None,
) -> dict[str, Any]:
    """The ``feature_flag.evaluation`` attributes of one evaluation (pure).

    ``feature_flag.version`` is the snapshot version from the flag metadata
    (``snapshotVersion``), as a string; ``set_id`` the environment. ``value`` is included
    only with ``include_value`` (scalars as they are, anything else as JSON text is the
    caller's business: OpenTelemetry attribute values must be primitives or lists of them,
    so other values are given as ``str``)."""
    attrs: dict[str, Any] = {"feature_flag.key": key, "feature_flag.provider.name": provider_name}
    if variant:
        attrs["feature_flag.result.variant"] = variant
    if reason is not None:
        attrs["feature_flag.result.reason"] = _snake(reason)
    if set_id:
        attrs["feature_flag.set.id"] = set_id
    version = (metadata or {}).get("snapshotVersion")
    if version is not None:
        attrs["feature_flag.version"] = str(version)
    if error_code is not None:
        attrs["error.type"] = _snake(error_code)
        if error_message:
            attrs["feature_flag.error.message"] = error_message
    if include_value:
        attrs["feature_flag.result.value"] = (
            value if isinstance(value, bool | int | float | str) else str(value)
        )
    if context_id:
        attrs["feature_flag.context.id"] = context_id
    return attrs


def emit(
    attributes: Mapping[str, Any],
    logger: Logger | None,
    *,
    span_events: bool = True,
) -> None:
    """Emit the event: a log record through ``logger`` (None: none) and, with
    ``span_events``, an event on the current span if it is recording."""
    from opentelemetry import trace

    if logger is not None:
        logger.emit(event_name=EVENT_NAME, attributes=dict(attributes))
    if span_events:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(EVENT_NAME, attributes=dict(attributes))


class OpenTelemetryHook(Hook):
    """An OpenFeature hook emitting ``feature_flag.evaluation`` events (module docstring).

    ``provider``: the ``FlagappProvider`` whose snapshot's environment is the
    ``feature_flag.set.id`` (without it the attribute is left out). ``logger_provider``:
    where log records go (default: the global one, ``opentelemetry._logs``);
    ``log_records`` / ``span_events`` turn either form off. The hook never raises into an
    evaluation: telemetry failing is logged and ignored by the SDK's hook runner, and this
    hook catches its own errors first.
    """

    def __init__(
        self,
        provider: FlagappProvider | None = None,
        *,
        logger_provider: LoggerProvider | None = None,
        log_records: bool = True,
        span_events: bool = True,
        include_value: bool = False,
        include_context_id: bool = False,
    ) -> None:
        try:
            from opentelemetry._logs import get_logger
        except ImportError as exc:  # pragma: no cover - exercised without the extra
            raise ImportError(
                "OpenTelemetryHook needs opentelemetry-api: pip install 'django-flagapp[otel]'"
            ) from exc
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("django-flagapp")
        except PackageNotFoundError:  # pragma: no cover - a source checkout
            ours = ""
        self.provider = provider
        self.logger: Logger | None = (
            get_logger(_SCOPE, ours, logger_provider=logger_provider) if log_records else None
        )
        self.span_events = span_events
        self.include_value = include_value
        self.include_context_id = include_context_id

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        """Runs after every evaluation, successful or not (OpenFeature's "finally" stage)."""
        try:
            snapshot = self.provider.snapshot if self.provider is not None else None
            meta = hook_context.provider_metadata
            context_id = None
            if self.include_context_id:
                context_id = hook_context.evaluation_context.targeting_key
            attrs = evaluation_attributes(
                key=details.flag_key,
                provider_name=meta.name if meta is not None else "",
                variant=details.variant,
                reason=details.reason,
                error_code=details.error_code,
                error_message=details.error_message,
                metadata=details.flag_metadata,
                set_id=snapshot.environment if snapshot is not None else None,
                value=details.value,
                include_value=self.include_value,
                context_id=context_id,
            )
            emit(attrs, self.logger, span_events=self.span_events)
        except Exception:  # telemetry must never cost an evaluation
            import logging

            logging.getLogger("flagapp.provider").exception("flagapp: OpenTelemetry hook failed")
