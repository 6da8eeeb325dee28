"""The flag evaluation engine: standard library + mmh3 + google-re2 only.

Parse a format-v1 ruleset once (``parse_ruleset``), then evaluate it as often as needed
(``evaluate``) — a few microseconds per call. Imports neither Django nor openfeature, so the
provider, the Django app, the OFREP endpoints and the CLI all share exactly one evaluator.
See docs/internals.md (contracts) and docs/ruleset-format.md (format and semantics).
"""

from __future__ import annotations

from .adapt import Served, ServedCache, copy_value, served
from .bucketing import bucket, hash32
from .delta import DeltaMismatch, parse_delta
from .evaluate import bind, changed_flag_keys, evaluate, evaluate_all
from .exceptions import EngineError, ParseError, UnusableBucketValue
from .limits import (
    MAX_ADDRESS_LENGTH,
    MAX_CHAIN_DEPTH,
    MAX_INTEGER,
    MAX_MATCH_INPUT_LENGTH,
    MAX_OBJECT_DEPTH,
    MAX_REGEX_LENGTH,
    MAX_SEMVER_LENGTH,
    MAX_TOTAL_WEIGHT,
    MIN_INTEGER,
)
from .ruleset import parse_ruleset
from .schema import SCHEMA_PATH, load_schema
from .types import (
    FORMAT_VERSION,
    KINDS,
    Condition,
    Context,
    ErrorCode,
    Flag,
    FlagKind,
    Prerequisite,
    Reason,
    Resolution,
    Rollout,
    Rule,
    Ruleset,
    Segment,
    Serve,
    WeightedVariant,
)

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "MAX_ADDRESS_LENGTH",
    "MAX_CHAIN_DEPTH",
    "MAX_INTEGER",
    "MAX_MATCH_INPUT_LENGTH",
    "MAX_OBJECT_DEPTH",
    "MAX_REGEX_LENGTH",
    "MAX_SEMVER_LENGTH",
    "MAX_TOTAL_WEIGHT",
    "MIN_INTEGER",
    "SCHEMA_PATH",
    "Condition",
    "Context",
    "DeltaMismatch",
    "EngineError",
    "ErrorCode",
    "Flag",
    "FlagKind",
    "ParseError",
    "Prerequisite",
    "Reason",
    "Resolution",
    "Rollout",
    "Rule",
    "Ruleset",
    "Segment",
    "Serve",
    "Served",
    "ServedCache",
    "UnusableBucketValue",
    "WeightedVariant",
    "bind",
    "bucket",
    "changed_flag_keys",
    "copy_value",
    "evaluate",
    "evaluate_all",
    "hash32",
    "load_schema",
    "parse_delta",
    "parse_ruleset",
    "served",
]
