"""Typed, immutable objects of ruleset format v1 and of one evaluation's result.

Everything here is frozen so a parsed ruleset can be shared by every thread of a process
without a lock: a new snapshot is a new object, swapped in with one reference assignment.
The shapes mirror the JSON format documented in docs/ruleset-format.md.

Nothing here imports Django or openfeature: the engine is a pure library that the
OpenFeature provider, the Django app, the OFREP endpoints and the CLI all share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "BuildState",
    "Condition",
    "Context",
    "ErrorCode",
    "Flag",
    "FlagKind",
    "FlagTable",
    "Prerequisite",
    "Reason",
    "Resolution",
    "Rollout",
    "Rule",
    "Ruleset",
    "Segment",
    "Serve",
    "WeightedVariant",
]

FORMAT_VERSION: Final = 1

FlagKind = Literal["boolean", "string", "integer", "float", "object"]
KINDS: Final[tuple[str, ...]] = ("boolean", "string", "integer", "float", "object")

#: An evaluation context as the engine sees it: ``targetingKey`` plus attributes, flat at the
#: top level (``{"targetingKey": "u1", "plan": "pro", "company": {"plan": "x"}}``).
Context = Mapping[str, Any]


class Reason:
    """Resolution reasons. The first six are OpenFeature's standard names."""

    TARGETING_MATCH: Final = "TARGETING_MATCH"
    SPLIT: Final = "SPLIT"
    STATIC: Final = "STATIC"
    DEFAULT: Final = "DEFAULT"
    DISABLED: Final = "DISABLED"
    ERROR: Final = "ERROR"
    #: Custom (not an OpenFeature standard name): OFREP replies carry DISABLED instead and put
    #: this one in metadata, because strict clients reject unknown reasons.
    PREREQUISITE_FAILED: Final = "PREREQUISITE_FAILED"


class ErrorCode:
    """Error codes, spelled exactly as OpenFeature's ``ErrorCode`` enum values."""

    FLAG_NOT_FOUND: Final = "FLAG_NOT_FOUND"
    TYPE_MISMATCH: Final = "TYPE_MISMATCH"
    TARGETING_KEY_MISSING: Final = "TARGETING_KEY_MISSING"
    PARSE_ERROR: Final = "PARSE_ERROR"
    INVALID_CONTEXT: Final = "INVALID_CONTEXT"
    GENERAL: Final = "GENERAL"


@dataclass(frozen=True, slots=True)
class Condition:
    """One test of the context. ``op`` is a key of the operator table (operators.py)."""

    op: str
    attr: str | None = None
    values: tuple[Any, ...] = ()
    negate: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class WeightedVariant:
    variant: str
    weight: int


@dataclass(frozen=True, slots=True)
class Rollout:
    """A sticky percentage split; see bucketing.py for the flagd-compatible hash."""

    weights: tuple[WeightedVariant, ...]
    bucket_by: str = "targetingKey"
    salt: str | None = None  # None means "the flag key"
    hash: str = "murmur3-concat"  # bucketing.HASH_ALGORITHMS

    @property
    def total_weight(self) -> int:
        return sum(w.weight for w in self.weights)


@dataclass(frozen=True, slots=True)
class Serve:
    """What a rule or the fallthrough serves: exactly one of a fixed variant or a rollout."""

    variant: str | None = None
    rollout: Rollout | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    when: tuple[Condition, ...]
    serve: Serve


@dataclass(frozen=True, slots=True)
class Prerequisite:
    flag: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Flag:
    key: str
    kind: str
    enabled: bool
    variants: Mapping[str, Any]
    prerequisites: tuple[Prerequisite, ...] = ()
    rules: tuple[Rule, ...] = ()
    fallthrough: Serve | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Filled by the parser: the function that evaluates this flag. Not part of equality.
    compiled: Callable[..., Resolution] | None = field(default=None, compare=False, repr=False)
    #: Filled by the parser: the digest of the flag's document entry (what a later parse
    #: compares) and its compiled conditions (what a recompile for a changed prerequisite
    #: reuses). Kept on the flag, which unchanged versions share, rather than in per-version
    #: tables that a change would have to copy. Not part of equality.
    digest: bytes | None = field(default=None, compare=False, repr=False)
    plans: tuple[tuple[Any, ...], ...] | None = field(default=None, compare=False, repr=False)


class FlagTable(Mapping[str, Any]):
    """A read-only view of one attribute of every flag of a ruleset (``BuildState``'s
    ``flag_digests`` and ``conditions``): no table per version to copy on a change."""

    __slots__ = ("_attr", "_flags")

    def __init__(self, flags: Mapping[str, Flag], attr: str) -> None:
        self._flags = flags
        self._attr = attr

    @property
    def flags(self) -> Mapping[str, Flag]:
        """The flag table viewed (the very mapping of the ruleset built with it)."""
        return self._flags

    def __getitem__(self, key: str) -> Any:
        value = getattr(self._flags[key], self._attr)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        flag = self._flags.get(key)
        value = None if flag is None else getattr(flag, self._attr)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        attr = self._attr
        return (k for k, f in self._flags.items() if getattr(f, attr) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True, slots=True)
class BuildState:
    """What a later ``parse_ruleset(doc, previous=ruleset)`` or ``parse_delta(delta,
    previous=ruleset)`` reuses from ``ruleset``'s own build.

    ``*_digests``: BLAKE2b-128 of the ``repr`` of each flag's and segment's document entry
    (UTF-8, surrogatepass), taken at parse time, so a caller mutating its document afterwards
    cannot make a changed entry look unchanged; ``repr`` tells ``1``, ``1.0`` and ``true``
    apart where ``==`` does not.
    ``segment_tests`` and ``conditions`` are compiled parts of no particular version.
    ``flag_digests`` and ``conditions`` are ``FlagTable`` views of ``Flag.digest`` and
    ``Flag.plans``.
    ``prerequisite_users`` (flag -> the flags listing it as a prerequisite) and
    ``segment_users`` (segment -> the flags whose rules name it) are the reverse edges, so a
    change finds what depends on it without walking every flag.
    ``base`` (a weak reference to the ruleset this one was built from) and ``changed`` (the
    keys whose evaluation may differ from ``base``'s): ``changed_flag_keys(base, this)``
    without comparing every flag.
    """

    flag_digests: Mapping[str, bytes]
    segment_digests: Mapping[str, bytes]
    segment_tests: Mapping[str, Callable[..., bool]]
    conditions: Mapping[str, tuple[tuple[Any, ...], ...]]
    prerequisite_users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    segment_users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    base: Callable[[], Ruleset | None] | None = None
    changed: frozenset[str] = frozenset()
    #: The segment mapping built with this state (``changed`` holds for it only).
    segments: Mapping[str, Segment] | None = None


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Ruleset:
    """One environment's flags at one version. ``raw`` keeps the validated JSON document
    (empty when parsed with ``keep_raw=False``, as the provider does: ``engine.document``
    rebuilds an equivalent document when one is needed).

    Flags and segments that did not change are shared with the ruleset this one was built
    from (the same objects, compiled functions included): nothing in them depends on the
    version. ``snapshotVersion`` is added to a flag's resolutions by ``bind`` (evaluate.py)
    the first time each is returned from this ruleset, and kept in ``bound`` (private to the
    engine: ``id`` of a pre-built resolution or metadata mapping -> its bound form).

    Weak-referenceable so a holder (and a test) can tell that a replaced ruleset was freed.
    """

    environment: str
    version: int
    etag: str
    flags: Mapping[str, Flag]
    segments: Mapping[str, Segment]
    format: int = FORMAT_VERSION
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: Set by ``parse_ruleset``: what a later incremental parse may reuse (None when built
    #: in code). Not part of equality.
    build: BuildState | None = field(default=None, compare=False, repr=False)
    #: ``init=False``: a copy (``dataclasses.replace``) binds anew, for its own version.
    bound: dict[int, Any] = field(default_factory=dict, init=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of evaluating one flag for one context.

    ``value`` is meaningful only when ``use_default`` is false; when it is true the caller's
    own default must be served (flag disabled, not found, prerequisite failed, nothing
    matched with a null fallthrough, or any error). Zero values are real values.
    ``metadata`` carries the flag's metadata plus ``snapshotVersion``.
    ``rule_id`` names the rule that decided (``None`` for fallthrough or no decision): the
    CLI's ``--explain`` and the blast-radius preview use it.
    """

    flag_key: str
    value: Any
    variant: str | None
    reason: str
    use_default: bool = False
    error_code: str | None = None
    error_message: str | None = None
    rule_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
