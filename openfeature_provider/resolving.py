"""The provider's evaluation side: ``resolve_*_details`` and ``track`` (FlagappProvider's).

The hot path takes no lock and builds nothing it does not return: it reads the served ruleset
and its per-snapshot result cache in one attribute (``_serving``, swapped in one assignment by
provider.py), calls the flag's compiled function, and hands out the cached
``FlagResolutionDetails`` for that pre-built resolution — built, with the snapshot's
``snapshotVersion`` bound (``engine.bind``), the first time the snapshot serves it. Errors and
object values (copied for each caller) take the engine's one adapter, ``served``.
Split from provider.py (lifecycle, sources, events), whose ``FlagappProvider`` mixes it in.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider
from openfeature.track import TrackingEventDetails

from openfeature_provider.engine import Resolution, Ruleset, bind, copy_value, evaluate, served
from openfeature_provider.tracking import EventBuffer, UsageCounter

__all__ = ["Resolving"]

logger = logging.getLogger("flagapp.provider")

T = TypeVar("T")
_EMPTY_CONTEXT: Final[Mapping[str, Any]] = MappingProxyType({})
_random = random.random
_ERROR_CODES: Final[dict[str, ErrorCode]] = {code.value: code for code in ErrorCode}
#: Cached result objects per snapshot; bounded so an engine that builds resolutions per call
#: (errors do) cannot grow it. The engine pre-builds every non-error resolution.
_DETAILS_CACHE_MAX: Final = 50_000

#: A cached result: the bound resolution (exposures read it) and the details handed out.
Cached = tuple[Resolution, FlagResolutionDetails[Any]]


class Resolving(AbstractProvider):
    """``resolve_*_details`` and ``track`` over the attributes FlagappProvider sets."""

    _serving: tuple[Ruleset | None, dict[int, tuple[Resolution, Cached]]]
    _usage: UsageCounter | None
    _sample_rate: float
    events: EventBuffer | None
    _closed: bool

    # -- evaluation (hot path: no lock, nothing built that is not returned) -----------------
    def _resolve(
        self,
        flag_key: str,
        default_value: T,
        evaluation_context: EvaluationContext | None,
        kind: str,
    ) -> FlagResolutionDetails[T]:
        ruleset, details = self._serving
        if ruleset is None:
            return FlagResolutionDetails(
                default_value,
                ErrorCode.PROVIDER_NOT_READY,
                "flagapp: no snapshot loaded",
                Reason.ERROR,
            )
        try:
            if evaluation_context is None:
                ctx: Mapping[str, Any] = _EMPTY_CONTEXT
            else:
                tk = evaluation_context.targeting_key
                ctx = evaluation_context.attributes
                if tk is not None:
                    ctx = {**ctx, "targetingKey": tk}
            flag = ruleset.flags.get(flag_key)
            compiled = flag.compiled if flag is not None and flag.kind == kind else None
            usage = self._usage
            if compiled is None:  # the engine's own entry point for every error path
                template = None
                res = evaluate(ruleset, flag_key, ctx, kind)
            else:
                # the compiled flag directly on the hot path (all evaluate() would call). Its
                # pre-built resolution is shared by every version the flag is unchanged in, so
                # it carries no snapshot version: the details cached here carry the bound
                # metadata (engine.bind), built on the first evaluation per snapshot
                template = compiled(ctx)
                hit = details.get(id(template))
                if hit is not None and hit[0] is template:
                    res, cached = hit[1]
                    if usage is not None:
                        usage.note(flag_key, res.variant)
                    if self._sample_rate and _random() < self._sample_rate:
                        self._expose(res, ctx)
                    return cached
                res = bind(ruleset, template)
            if usage is not None and flag is not None:  # a known flag was used
                usage.note(flag_key, res.variant)
            if res.use_default:  # the engine's one adapter decides reason and error code
                out = served(res, default_value, kind)
                code = out.error_code
                return FlagResolutionDetails(
                    default_value,
                    None if code is None else _ERROR_CODES.get(code, ErrorCode.GENERAL),
                    out.error_message,
                    out.reason,
                    None,
                    res.metadata,
                )
            if self._sample_rate and _random() < self._sample_rate:
                self._expose(res, ctx)
            if kind == "object":  # never hand out the snapshot's own (shared) containers
                # iterative copy (issue 11 finding 7): no depth raises RecursionError
                return FlagResolutionDetails(
                    copy_value(res.value), None, None, res.reason, res.variant, res.metadata
                )
            value = served(res, default_value, kind).value  # a float flag serves floats
            if kind == "integer" and type(value) is not int:
                return FlagResolutionDetails(
                    default_value,
                    ErrorCode.TYPE_MISMATCH,
                    f"flag {flag_key!r} served a non-integer value",
                    Reason.ERROR,
                )
            result: FlagResolutionDetails[Any] = FlagResolutionDetails(
                value, None, None, res.reason, res.variant, res.metadata
            )
            if template is not None and len(details) < _DETAILS_CACHE_MAX:
                details[id(template)] = (template, (res, result))
            return result
        except Exception as exc:  # nothing but OpenFeature results leave the provider
            logger.exception("flagapp: resolving %r failed", flag_key)
            return FlagResolutionDetails(
                default_value, ErrorCode.GENERAL, f"{type(exc).__name__}: {exc}", Reason.ERROR
            )

    def _expose(self, res: Resolution, ctx: Mapping[str, Any]) -> None:
        events = self.events
        if events is not None:
            details = {"reason": res.reason, "ruleId": res.rule_id}
            version = res.metadata.get("snapshotVersion")
            if version is not None:
                details["snapshotVersion"] = version
            events.add(
                ("exposure", res.flag_key, res.variant, res.value, dict(ctx), details, time.time())
            )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, "integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, "object")

    # -- tracking ---------------------------------------------------------------------------
    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Buffer a tracking event; never blocks (a full buffer drops its oldest event)."""
        events = self.events
        if events is None or self._closed:
            return
        try:
            if evaluation_context is None:
                ctx: Mapping[str, Any] = {}
            else:
                ctx = dict(evaluation_context.attributes)
                if evaluation_context.targeting_key is not None:
                    ctx["targetingKey"] = evaluation_context.targeting_key
            value = tracking_event_details.value if tracking_event_details else None
            attrs = dict(tracking_event_details.attributes) if tracking_event_details else None
            events.add(("track", tracking_event_name, None, value, ctx, attrs, time.time()))
        except Exception:
            logger.exception("flagapp: track(%r) failed", tracking_event_name)
