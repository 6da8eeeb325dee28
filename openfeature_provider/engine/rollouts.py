"""Rollouts compiled into closures, and reading an attribute from a context (``make_getter``).

A rollout is flagd's fractional v2 with the arithmetic of bucketing.py (thresholds, digest):
every variant's resolution and both error resolutions (bucket value missing, or with no UTF-8
form) are built here once, and the closure only reads the value, hashes it and picks.
codegen.py inlines the same steps for the common case and calls these closures otherwise.
Split from compiler.py (conditions, segments, flags), which re-exports ``make_getter``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from .bucketing import DEFAULT_HASH, digest, key_encoder, thresholds
from .codegen import RolloutPlan
from .intern import shared
from .types import Context, ErrorCode, Reason, Resolution, Rollout

__all__ = ["make_getter"]

Compiled = Callable[[Context], Resolution]


def make_getter(path: str) -> Callable[[Context], Any]:
    """Read an attribute; ``company.plan`` walks nested mappings.

    A literal top-level key (``"app.version"``) wins over the nested reading, so contexts
    that flatten attributes keep working.
    """
    if "." not in path:

        def get_simple(ctx: Context) -> Any:
            return ctx.get(path)

        return get_simple
    parts = tuple(path.split("."))

    def get_nested(ctx: Context) -> Any:
        value = ctx.get(path)
        if value is not None:
            return value
        cur: Any = ctx
        for part in parts:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(part)
            if cur is None:
                return None
        return cur

    return get_nested


def _rollout(
    rollout: Rollout,
    rule_id: str | None,
    fixed: Callable[[str, str, str | None], Resolution],
    flag_key: str,
    meta: Mapping[str, Any],
) -> RolloutPlan:
    """flagd fractional v2, with the arithmetic of bucketing.py (thresholds, digest)."""
    salt = flag_key if rollout.salt is None else rollout.salt
    weights = tuple(w.weight for w in rollout.weights)
    limits = shared(thresholds(list(weights)), ("thresholds", weights))
    results = tuple(fixed(w.variant, Reason.SPLIT, rule_id) for w in rollout.weights)
    bucket_by = rollout.bucket_by
    missing_message, unusable_message = _rollout_messages(bucket_by)
    missing = Resolution(
        flag_key,
        None,
        None,
        Reason.ERROR,
        use_default=True,
        error_code=ErrorCode.TARGETING_KEY_MISSING,
        error_message=missing_message,
        rule_id=rule_id,
        metadata=meta,
    )
    unusable = Resolution(
        flag_key,
        None,
        None,
        Reason.ERROR,
        use_default=True,
        error_code=ErrorCode.INVALID_CONTEXT,
        error_message=unusable_message,
        rule_id=rule_id,
        metadata=meta,
    )
    if rollout.hash != DEFAULT_HASH:
        fn = _encoded_rollout_closure(
            bucket_by, key_encoder(rollout.hash, salt), limits, results, missing, unusable
        )
    else:
        fn = _rollout_closure(bucket_by, salt, limits, results, missing, unusable)
    return RolloutPlan(
        fn=fn,
        bucket_by=bucket_by,
        salt=salt,
        hash=rollout.hash,
        thresholds=limits,
        results=results,
        missing=missing,
        unusable=unusable,
    )


def _rollout_messages(bucket_by: str) -> tuple[str, str]:
    """The two error messages of a rollout, one copy per ``bucket_by`` (intern.py)."""
    return shared(
        (
            f"the rollout buckets by {bucket_by!r}, which the context lacks or is not a string",
            f"the rollout buckets by {bucket_by!r}, whose value is not valid Unicode text"
            " (a lone surrogate)",
        ),
        ("rollout-messages", bucket_by),
    )


def _encoded_rollout_closure(
    bucket_by: str,
    encode: Callable[[str], bytes],
    limits: tuple[int, ...],
    results: tuple[Resolution, ...],
    missing: Resolution,
    unusable: Resolution,
) -> Compiled:
    """A rollout whose hashed bytes come from ``bucketing.key_encoder`` (a non-default hash
    algorithm such as ``flagd-cbor``); codegen.py calls this closure rather than inlining it.
    """
    get = make_getter(bucket_by)

    def split_encoded(ctx: Context) -> Resolution:
        value = get(ctx)
        if not isinstance(value, str):
            return missing
        try:
            h = digest(encode(value), 0)
        except UnicodeEncodeError:
            return unusable
        return results[bisect_right(limits, h)]

    return split_encoded


def _rollout_closure(
    bucket_by: str,
    salt: str,
    limits: tuple[int, ...],
    results: tuple[Resolution, ...],
    missing: Resolution,
    unusable: Resolution,
) -> Compiled:
    """The rollout as a closure (codegen.py inlines the same steps for top-level attributes).

    Per call: read the bucket value (absent or not a string -> ``missing``), hash the UTF-8
    bytes of ``salt + value`` (no UTF-8 form -> ``unusable``), pick the variant whose
    threshold is above the hash.
    """
    get = make_getter(bucket_by)
    if len(results) == 1:
        only = results[0]

        def single(ctx: Context) -> Resolution:
            value = get(ctx)
            if not isinstance(value, str):
                return missing
            if value.isascii():
                return only
            try:
                value.encode()
            except UnicodeEncodeError:
                return unusable
            return only

        return single

    if len(results) == 2 and "." not in bucket_by:
        first, second = results
        limit = limits[0]

        def split_two(ctx: Context) -> Resolution:
            value = ctx.get(bucket_by)
            if type(value) is not str and not isinstance(value, str):
                return missing
            try:
                h = digest((salt + value).encode(), 0)
            except UnicodeEncodeError:
                return unusable
            return first if h < limit else second

        return split_two

    if "." not in bucket_by:

        def split(ctx: Context) -> Resolution:
            value = ctx.get(bucket_by)
            if type(value) is not str and not isinstance(value, str):
                return missing
            try:
                h = digest((salt + value).encode(), 0)
            except UnicodeEncodeError:
                return unusable
            return results[bisect_right(limits, h)]

        return split

    def split_nested(ctx: Context) -> Resolution:
        value = get(ctx)
        if not isinstance(value, str):
            return missing
        try:
            h = digest((salt + value).encode(), 0)
        except UnicodeEncodeError:
            return unusable
        return results[bisect_right(limits, h)]

    return split_nested
