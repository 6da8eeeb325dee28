"""OpenTelemetry ``feature_flag.evaluation`` events for ``flagapp.evaluate`` (extra ``otel``).

The Django twin of ``openfeature_provider.otel.OpenTelemetryHook``: with
``FLAGAPP["OPENTELEMETRY"]`` on, every ``flagapp.evaluate`` (so ``flag_is_active``,
``get_value``, the async twins, the template tags, decorators and mixins) emits one
``feature_flag.evaluation`` log record through the global OpenTelemetry ``LoggerProvider``
and, inside a recording span (a request traced by your OpenTelemetry Django
instrumentation), a span event of that name. The attributes are built by the same function
as the hook's (``openfeature_provider.otel.evaluation_attributes``): ``feature_flag.key``,
``feature_flag.provider.name`` (``"flagapp"``), ``feature_flag.result.variant``,
``feature_flag.result.reason``, ``feature_flag.set.id`` (the environment evaluated),
``feature_flag.version`` (the snapshot version, a string), and ``error.type`` /
``feature_flag.error.message`` on errors.

``FLAGAPP["OPENTELEMETRY"]``: ``False`` (default; nothing is imported and ``evaluate`` pays
one ``is None`` test), ``True``, or a dict of the hook's options (``log_records``,
``span_events``, ``include_value``, ``include_context_id``). Why off by default: the events
cost a few microseconds each and are only useful where an OpenTelemetry SDK is configured.
A failure to emit is logged, never raised into the request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flagapp.conf import settings

__all__ = ["PROVIDER_NAME", "configure", "connect"]

logger = logging.getLogger("flagapp")

#: ``feature_flag.provider.name`` of in-process evaluations.
PROVIDER_NAME = "flagapp"

_OPTIONS = ("log_records", "span_events", "include_value", "include_context_id")


def _options() -> dict[str, bool] | None:
    conf = settings.OPENTELEMETRY
    if not conf:
        return None
    if conf is True:
        return {}
    if not isinstance(conf, Mapping):
        raise ValueError('FLAGAPP["OPENTELEMETRY"]: must be a bool or a dict of options')
    unknown = sorted(set(conf) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f'FLAGAPP["OPENTELEMETRY"]: unknown option(s) {", ".join(unknown)}; '
            f"known: {', '.join(_OPTIONS)}"
        )
    return {k: bool(v) for k, v in conf.items()}


def _emitter(options: Mapping[str, bool]) -> Any:
    """The function ``evaluate`` calls after each evaluation: ``(details, env, ctx)``."""
    from opentelemetry._logs import get_logger

    from openfeature_provider.otel import emit, evaluation_attributes

    otel_logger = get_logger("flagapp") if options.get("log_records", True) else None
    span_events = options.get("span_events", True)
    include_value = options.get("include_value", False)
    include_context_id = options.get("include_context_id", False)

    def record(details: Any, env: str, context: Mapping[str, Any] | None) -> None:
        try:
            context_id = None
            if include_context_id and context:
                tk = context.get("targetingKey")
                context_id = tk if isinstance(tk, str) else None
            attrs = evaluation_attributes(
                key=details.flag_key,
                provider_name=PROVIDER_NAME,
                variant=details.variant,
                reason=details.reason,
                error_code=details.error_code,
                error_message=details.error_message,
                metadata=details.metadata,
                set_id=env,
                value=details.value,
                include_value=include_value,
                context_id=context_id,
            )
            emit(attrs, otel_logger, span_events=span_events)
        except Exception:
            logger.exception("flagapp: emitting an OpenTelemetry evaluation event failed")

    return record


def configure() -> None:
    """Install (or remove) the emitter ``flagapp.evaluate`` calls, from the settings."""
    from flagapp.evaluation import api

    options = _options()
    if options is None:
        api._telemetry = None
        return
    try:
        api._telemetry = _emitter(options)
    except ImportError as exc:
        api._telemetry = None
        raise ImportError(
            'FLAGAPP["OPENTELEMETRY"] needs opentelemetry-api: pip install "django-flagapp[otel]"'
        ) from exc


def _configure_or_log() -> None:
    """``configure``, turning the events off with an error log when the setting is wrong or
    the extra missing: a malformed ``FLAGAPP`` is the system checks' to report (E002), and
    telemetry must never stop the site from starting."""
    from flagapp.evaluation import api

    try:
        configure()
    except Exception as exc:
        api._telemetry = None
        logger.error("flagapp: OpenTelemetry events are off: %s", exc)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "FLAGAPP":
        _configure_or_log()


def connect() -> None:
    """Configure now and on every change of ``FLAGAPP`` (``AppConfig.ready``)."""
    from django.test.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.telemetry.settings")
    _configure_or_log()
