"""The spec scenarios FlagappProvider answers differently, deliberately, and why."""

from __future__ import annotations

# Scenarios the provider answers differently from the spec's reference data, deliberately.
DECISIONS: dict[str, str] = {
    "reason-codes-cached": (
        "CACHED is never returned: FlagappProvider evaluates every call against the snapshot "
        "it holds (microseconds), so the honest reason is the rule's (STATIC, TARGETING_MATCH, "
        "...), not a cache hit; see docs/provider.md"
    ),
    "Returns no metadata": (
        "every resolution of a known flag carries `snapshotVersion` in its flag metadata (the "
        "ruleset version that decided, used for debugging and the OTel feature_flag.version), "
        "so flag metadata is never empty; see docs/ruleset-format.md. (OFREP answers carry it "
        "once per bulk answer as flag-set metadata instead, never per flag: docs/interop.md)"
    ),
}
