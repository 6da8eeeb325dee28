"""Validation of a format-v1 document's pieces into the frozen types (used by ruleset.py and
incremental.py).

A document is rejected whole on the first problem, with a ``ParseError`` whose ``path`` names
the JSON location (``$.flags["a.b"].rules[0].when[1].op``): a snapshot is either entirely
servable or not served at all, and whoever produced it (the Django compiler, a person, CI
running ``flagapp-eval``) can find the mistake. Unknown keys are errors too: a typo such as
``"value"`` for ``"values"`` would otherwise silently change who sees what.

Each function validates one entry (a flag, a segment) or one document-wide property (segment
cycles, prerequisites), so a parse that reuses the previous version validates only the
entries that changed. Strings that repeat across flags (variant names, metadata values,
attribute names) are interned (``sys.intern``): a 10,000-flag ruleset holds one copy of
``"on"``, ``"release"`` or ``"team-3"`` rather than one per flag.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from .bucketing import DEFAULT_HASH, HASH_ALGORITHMS
from .exceptions import ParseError
from .graph import find_cycle, longest_chain, prerequisite_graph, segment_graph
from .intern import fresh, key_of, scalar, shared, string
from .limits import MAX_CHAIN_DEPTH, MAX_TOTAL_WEIGHT
from .operators import OPERATORS, ValueProblem, json_type
from .shapes import (
    _array,
    _at,
    _finite_number,
    _integer,
    _json_value,
    _keys,
    _number,
    _object,
    _string,
    _string_list,
    _utf8,
)
from .types import (
    FORMAT_VERSION,
    KINDS,
    Condition,
    Flag,
    Prerequisite,
    Rollout,
    Rule,
    Segment,
    Serve,
    WeightedVariant,
)

_intern = string
_TOP_KEYS = {"format", "environment", "version", "etag", "flags", "segments"}
_TOP_REQUIRED = ("format", "environment", "version", "flags")
_FLAG_KEYS = {
    "kind",
    "enabled",
    "variants",
    "prerequisites",
    "rules",
    "fallthrough",
    "metadata",
}
_FLAG_REQUIRED = ("kind", "enabled", "variants")
_RULE_KEYS = {"id", "when", "serve"}
_COND_KEYS = {"attr", "op", "values", "negate", "case_insensitive"}
_SERVE_KEYS = {"variant", "rollout"}
_ROLLOUT_KEYS = {"weights", "bucket_by", "salt", "hash"}
_WEIGHT_KEYS = {"variant", "weight"}
_PREREQ_KEYS = {"flag", "variants"}
_SEGMENT_KEYS = {"include", "exclude", "when"}
_WEIGHT_BOUND = f"{MAX_TOTAL_WEIGHT:,} (flagd's bound)"

# --------------------------------------------------------------------------------------------
# pieces


def _flag(key: str, doc: Any, path: str, segments: Container[str]) -> Flag:
    if not key:
        raise ParseError(path, "flag key must not be empty")
    _utf8(key, path, "the flag key (the default rollout salt)")
    obj = _object(doc, path)
    _keys(obj, path, _FLAG_KEYS, _FLAG_REQUIRED)
    kind = obj["kind"]
    if kind not in KINDS:
        raise ParseError(
            f"{path}.kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
        )
    enabled = obj["enabled"]
    if type(enabled) is not bool:
        raise ParseError(f"{path}.enabled", "expected a boolean")

    variants_doc = _object(obj["variants"], f"{path}.variants")
    if not variants_doc:
        raise ParseError(f"{path}.variants", "a flag needs at least one variant")
    variants = {
        name: _variant_value(kind, value, _at(f"{path}.variants", name))
        for name, value in variants_doc.items()
    }
    for name in variants:
        if not name:
            raise ParseError(f"{path}.variants", "variant names must not be empty")
        _utf8(name, _at(f"{path}.variants", name), "a variant name (it is served)")

    prerequisites = tuple(
        _prerequisite(item, f"{path}.prerequisites[{i}]")
        for i, item in enumerate(_array(obj.get("prerequisites", []), f"{path}.prerequisites"))
    )
    rules = tuple(
        _rule(item, f"{path}.rules[{i}]", variants, segments)
        for i, item in enumerate(_array(obj.get("rules", []), f"{path}.rules"))
    )
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise ParseError(f"{path}.rules[{i}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
    fallthrough_doc = obj.get("fallthrough")
    fallthrough = (
        None
        if fallthrough_doc is None
        else _serve(fallthrough_doc, f"{path}.fallthrough", variants)
    )
    metadata_doc = _object(obj.get("metadata", {}), f"{path}.metadata")
    for mkey, mvalue in metadata_doc.items():
        mpath = _at(f"{path}.metadata", mkey)
        if not isinstance(mvalue, str | bool | int | float):
            raise ParseError(mpath, "metadata values must be strings, numbers or booleans")
        if isinstance(mvalue, str):
            _utf8(mvalue, mpath, "a metadata value (it is served)")
        elif not isinstance(mvalue, bool):
            _number(mvalue, mpath)
    return Flag(
        key=fresh(key),
        kind=_intern(kind),
        enabled=enabled,
        variants=_mapping(variants),
        prerequisites=prerequisites,
        rules=rules,
        fallthrough=fallthrough,
        metadata=_mapping(metadata_doc),
    )


def _mapping(items: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of ``items``, shared with every equal one (intern.py): variants and
    metadata repeat across flags. Strings are interned; object values are never shared."""
    parts: list[Any] = ["mapping"]
    copy: dict[str, Any] = {}
    shareable = True
    for name, value in items.items():
        name = _intern(name)
        value = scalar(value)
        vkey = key_of(value)
        shareable = shareable and vkey is not None
        parts.append((name, vkey))
        copy[name] = value
    return shared(MappingProxyType(copy), tuple(parts) if shareable else None)


def _variant_value(kind: str, value: Any, path: str) -> Any:
    ok: bool
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
        if ok:
            _utf8(value, path, "a served string")
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok:
            _number(value, path)
    elif kind == "float":
        # Integral JSON numbers are fine for a float flag ("1" is 1.0); they are served as
        # floats so every surface (OFREP, the SDK) sees the flag's declared type.
        if _finite_number(value):
            try:
                return float(value) * 1.0  # a new object: see intern.py
            except OverflowError:
                raise ParseError(path, "number too large for a float flag") from None
        ok = False
    else:
        ok = isinstance(value, dict | list)
        if ok:
            _json_value(value, path)
    if not ok:
        raise ParseError(
            path, f"a {kind} flag cannot have a variant value of type {json_type(value)}"
        )
    return value


def _prerequisite(doc: Any, path: str) -> Prerequisite:
    obj = _object(doc, path)
    _keys(obj, path, _PREREQ_KEYS, ("flag", "variants"))
    flag = _string(obj["flag"], f"{path}.flag")
    variants = _array(obj["variants"], f"{path}.variants")
    if not variants:
        raise ParseError(f"{path}.variants", "list at least one variant")
    for i, v in enumerate(variants):
        _string(v, f"{path}.variants[{i}]")
    return Prerequisite(flag=_intern(flag), variants=tuple(_intern(v) for v in variants))


def _rule(doc: Any, path: str, variants: Mapping[str, Any], segments: Container[str]) -> Rule:
    obj = _object(doc, path)
    _keys(obj, path, _RULE_KEYS, ("id", "when", "serve"))
    rule_id = _string(obj["id"], f"{path}.id")
    if not rule_id:
        raise ParseError(f"{path}.id", "rule id must not be empty")
    when = _conditions(obj["when"], f"{path}.when", segments)
    return Rule(
        id=_intern(rule_id), when=when, serve=_serve(obj["serve"], f"{path}.serve", variants)
    )


def _conditions(doc: Any, path: str, segments: Container[str]) -> tuple[Condition, ...]:
    return tuple(
        _condition(item, f"{path}[{i}]", segments) for i, item in enumerate(_array(doc, path))
    )


def _condition(doc: Any, path: str, segments: Container[str]) -> Condition:
    obj = _object(doc, path)
    _keys(obj, path, _COND_KEYS, ("op",))
    op_name = obj["op"]
    op = OPERATORS.get(op_name) if isinstance(op_name, str) else None
    if op is None:
        raise ParseError(f"{path}.op", f"unknown operator {op_name!r}")
    negate = obj.get("negate", False)
    if type(negate) is not bool:
        raise ParseError(f"{path}.negate", "expected a boolean")
    ci = obj.get("case_insensitive", False)
    if type(ci) is not bool:
        raise ParseError(f"{path}.case_insensitive", "expected a boolean")

    attr = obj.get("attr")
    if op.uses_attr:
        if attr is None:
            raise ParseError(path, f"operator {op_name!r} needs an 'attr'")
        attr = _string(attr, f"{path}.attr")
        if not attr or any(not part for part in attr.split(".")):
            raise ParseError(f"{path}.attr", f"invalid attribute path {attr!r}")
    elif "attr" in obj:
        raise ParseError(f"{path}.attr", f"operator {op_name!r} takes no 'attr'")

    values = _array(obj.get("values", []), f"{path}.values")
    if op.needs_values and not values:
        raise ParseError(f"{path}.values", f"operator {op_name!r} needs at least one value")
    if not op.needs_values and values:
        raise ParseError(f"{path}.values", f"operator {op_name!r} takes no values")
    if not op.uses_attr:
        for i, seg in enumerate(values):
            _string(seg, f"{path}.values[{i}]")
            if seg not in segments:
                raise ParseError(f"{path}.values[{i}]", f"undefined segment {seg!r}")
    elif op.build is not None:
        # Build once here so bad values (regex, semver, dates, networks) fail at parse time
        # with a precise path; the compiler builds again from the validated values.
        try:
            op.build(values, ci)
        except ValueProblem as exc:
            where = f"{path}.values" if exc.index is None else f"{path}.values[{exc.index}]"
            raise ParseError(where, exc.message) from None
    values = [scalar(v) for v in values]
    vkey = key_of(values)
    return shared(
        Condition(
            op=_intern(op_name),
            attr=None if attr is None else _intern(attr),
            values=tuple(values),
            negate=negate,
            case_insensitive=ci,
        ),
        None if vkey is None else ("condition", op_name, attr, vkey, negate, ci),
    )


def _serve(doc: Any, path: str, variants: Mapping[str, Any]) -> Serve:
    obj = _object(doc, path)
    _keys(obj, path, _SERVE_KEYS, ())
    has_variant = "variant" in obj
    has_rollout = "rollout" in obj
    if has_variant == has_rollout:
        raise ParseError(path, "serve exactly one of 'variant' or 'rollout'")
    if has_variant:
        name = _intern(_variant_ref(obj["variant"], f"{path}.variant", variants))
        return shared(Serve(variant=name), ("serve", name))
    rpath = f"{path}.rollout"
    robj = _object(obj["rollout"], rpath)
    _keys(robj, rpath, _ROLLOUT_KEYS, ("weights",))
    weights_doc = _array(robj["weights"], f"{rpath}.weights")
    if not weights_doc:
        raise ParseError(f"{rpath}.weights", "a rollout needs at least one weighted variant")
    weights = []
    seen: set[str] = set()
    for i, item in enumerate(weights_doc):
        wpath = f"{rpath}.weights[{i}]"
        wobj = _object(item, wpath)
        _keys(wobj, wpath, _WEIGHT_KEYS, ("variant", "weight"))
        name = _variant_ref(wobj["variant"], f"{wpath}.variant", variants)
        if name in seen:
            raise ParseError(f"{wpath}.variant", f"variant {name!r} listed twice")
        seen.add(name)
        weight = wobj["weight"]
        if type(weight) is not int or weight < 0:
            raise ParseError(f"{wpath}.weight", "weights are non-negative integers")
        if weight > MAX_TOTAL_WEIGHT:
            raise ParseError(f"{wpath}.weight", f"a weight is at most {_WEIGHT_BOUND}")
        name = _intern(name)
        weight = scalar(weight)
        weights.append(shared(WeightedVariant(variant=name, weight=weight), ("w", name, weight)))
    total = sum(w.weight for w in weights)
    if total <= 0:
        raise ParseError(f"{rpath}.weights", "weights sum to 0")
    if total > MAX_TOTAL_WEIGHT:
        raise ParseError(f"{rpath}.weights", f"weights sum to {total:,}, above {_WEIGHT_BOUND}")
    bucket_by = _string(robj.get("bucket_by", "targetingKey"), f"{rpath}.bucket_by")
    if not bucket_by or any(not part for part in bucket_by.split(".")):
        raise ParseError(f"{rpath}.bucket_by", f"invalid attribute path {bucket_by!r}")
    salt = robj.get("salt")
    if salt is not None:
        salt = _intern(_utf8(_string(salt, f"{rpath}.salt"), f"{rpath}.salt", "the salt"))
    algorithm = _string(robj.get("hash", DEFAULT_HASH), f"{rpath}.hash")
    if algorithm not in HASH_ALGORITHMS:
        raise ParseError(
            f"{rpath}.hash",
            f"unknown hash algorithm {algorithm!r} (one of {', '.join(HASH_ALGORITHMS)})",
        )
    bucket_by, algorithm = _intern(bucket_by), _intern(algorithm)
    rkey = ("rollout", tuple(weights), bucket_by, salt, algorithm)
    rollout = shared(
        Rollout(weights=tuple(weights), bucket_by=bucket_by, salt=salt, hash=algorithm), rkey
    )
    return shared(Serve(rollout=rollout), ("serve", rkey))


def _variant_ref(doc: Any, path: str, variants: Mapping[str, Any]) -> str:
    name = _string(doc, path)
    if name not in variants:
        raise ParseError(path, f"variant {name!r} is not defined by this flag")
    return name


def _segment(key: str, doc: Any, path: str, all_segments: Container[str]) -> Segment:
    if not key:
        raise ParseError(path, "segment key must not be empty")
    obj = _object(doc, path)
    _keys(obj, path, _SEGMENT_KEYS, ())
    include = _string_list(obj.get("include", []), f"{path}.include")
    exclude = _string_list(obj.get("exclude", []), f"{path}.exclude")
    when = _conditions(obj.get("when", []), f"{path}.when", all_segments)
    return Segment(
        key=fresh(key),
        include=frozenset(fresh(u) for u in include),
        exclude=frozenset(fresh(u) for u in exclude),
        when=when,
    )


# --------------------------------------------------------------------------------------------
# graph checks


def _check_segment_cycles(segments: Mapping[str, Segment]) -> None:
    graph = segment_graph(segments)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise ParseError(_at("$.segments", cycle[0]), f"segment cycle: {' -> '.join(cycle)}")
    depth, chain = longest_chain(graph)
    if depth > MAX_CHAIN_DEPTH:
        raise ParseError(
            _at("$.segments", chain[0]),
            f"segments refer to segments {depth} deep (at most {MAX_CHAIN_DEPTH})",
        )


def _check_prerequisites(flags: Mapping[str, Flag]) -> None:
    for key, flag in flags.items():
        for i, pre in enumerate(flag.prerequisites):
            path = f"{_at('$.flags', key)}.prerequisites[{i}]"
            target = flags.get(pre.flag)
            if target is None:
                raise ParseError(f"{path}.flag", f"undefined prerequisite flag {pre.flag!r}")
            for j, variant in enumerate(pre.variants):
                if variant not in target.variants:
                    raise ParseError(
                        f"{path}.variants[{j}]",
                        f"flag {pre.flag!r} has no variant {variant!r}",
                    )
    _check_prerequisite_chains(prerequisite_graph(flags))


def _check_prerequisite_chains(graph: Mapping[str, Sequence[str]]) -> None:
    """No prerequisite cycle and no chain deeper than ``MAX_CHAIN_DEPTH`` in ``graph`` (flag
    key -> its prerequisites): the whole document's, or the part an incremental build
    touched (``incremental``)."""
    cycle = find_cycle(graph)
    if cycle is not None:
        raise ParseError(
            f"{_at('$.flags', cycle[0])}.prerequisites",
            f"prerequisite cycle: {' -> '.join(cycle)}",
        )
    depth, chain = longest_chain(graph)
    if depth > MAX_CHAIN_DEPTH:
        raise ParseError(
            f"{_at('$.flags', chain[0])}.prerequisites",
            f"prerequisites chain {depth} flags deep (at most {MAX_CHAIN_DEPTH})",
        )


# --------------------------------------------------------------------------------------------
# the document's header


def _header(root: Mapping[str, Any], path: str = "$") -> tuple[int, str, int, str]:
    """(format, environment, version, etag) of a document (or of a delta, ``path`` "$")."""
    fmt = root["format"]
    if type(fmt) is not int or fmt != FORMAT_VERSION:
        raise ParseError(
            f"{path}.format", f"unsupported format {fmt!r}; this engine reads {FORMAT_VERSION}"
        )
    environment = _string(root["environment"], f"{path}.environment")
    version = _integer(root["version"], f"{path}.version")
    _number(version, f"{path}.version")
    etag = _string(root.get("etag", ""), f"{path}.etag")
    return fmt, fresh(environment), scalar(version), fresh(etag)
