"""Compile validated flags into functions: the work done once per snapshot, not per call.

Why: an evaluation is on the request path of every view, template tag and provider
call, so it must cost a few microseconds. Everything that does not depend on the context is
done here: operator values are pre-converted (operators.py), every outcome that does not
depend on the context (disabled, prerequisite failed, a fixed variant, each rollout variant)
is one pre-built ``Resolution`` returned as is, and the per-flag metadata mapping is built
once. What remains per call is attribute lookups, the compiled tests and one hash. Conditions
become closures here; a flag with rules or prerequisites is then assembled into one generated
function by codegen.py, which inlines the common cases and calls these closures for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .codegen import (
    CondPlan,
    Outcome,
    assemble_closures,
    codegen_enabled,
    generate_flag_function,
)
from .graph import segment_graph, topological_order
from .intern import shared
from .operators import OPERATORS
from .rollouts import _rollout, make_getter
from .types import (
    Condition,
    Context,
    Flag,
    Reason,
    Resolution,
    Segment,
    Serve,
)

__all__ = [
    "Predicate",
    "compile_condition",
    "compile_conditions",
    "compile_flag",
    "compile_segments",
    "make_getter",
]

logger = logging.getLogger("flagapp.engine")

Predicate = Callable[[Context], bool]

_EQUALITY_OPS = frozenset({"eq", "neq", "in", "not_in"})
Compiled = Callable[[Context], Resolution]


def string_set_spec(cond: Condition) -> tuple[str, frozenset[str], bool] | None:
    """(attr, strings, invert) when ``cond`` is plain string membership on a top-level
    attribute (eq/neq/in/not_in, string values, case-sensitive): the common condition, which
    the compiled closure and the generated flag code test without an intermediate call."""
    op = OPERATORS[cond.op]
    if (
        cond.op in _EQUALITY_OPS
        and cond.attr is not None
        and "." not in cond.attr
        and not cond.case_insensitive
        and all(type(v) is str for v in cond.values)
    ):
        values = tuple(cond.values)
        return cond.attr, shared(frozenset(values), ("strings", values)), op.negative != cond.negate
    return None


def compile_condition(
    cond: Condition,
    segment_tests: Mapping[str, Predicate],
    where: str = "",
    spec: tuple[str, frozenset[str], bool] | None = None,
) -> Predicate:
    """A predicate for one condition. Missing, null or unusable attribute -> ``False``.

    ``spec``: ``string_set_spec(cond)`` when already made (its frozenset is then shared)."""
    op = OPERATORS[cond.op]

    if not op.uses_attr:
        tests = tuple(segment_tests[key] for key in cond.values)
        seg_invert = op.negative != cond.negate
        if len(tests) == 1:
            only = tests[0]

            def in_one_segment(ctx: Context) -> bool:
                return only(ctx) != seg_invert

            return in_one_segment

        def in_segments(ctx: Context) -> bool:
            return any(t(ctx) for t in tests) != seg_invert

        return in_segments

    assert cond.attr is not None  # guaranteed by the parser
    attr = cond.attr
    get = make_getter(attr)

    if op.build is None:  # exists / not_exists: absence is the thing tested
        want_present = (cond.op == "exists") != cond.negate

        def presence(ctx: Context) -> bool:
            return (get(ctx) is not None) == want_present

        return presence

    test = op.build(cond.values, cond.case_insensitive)
    invert = op.negative != cond.negate
    warned: list[str] = []  # a list: 56 bytes, where an empty set takes 216

    def unusable(value: Any) -> bool:
        # Logged once per condition and type: a wrong type is a caller bug worth seeing,
        # but not once per request.
        tname = type(value).__name__
        if tname not in warned:
            warned.append(tname)
            logger.warning(
                "flagapp: %s attribute %r has unusable type %s for operator %r; "
                "the condition does not match",
                where or "condition",
                attr,
                tname,
                cond.op,
            )
        return False

    if spec is None:
        spec = string_set_spec(cond)
    if spec is not None:
        # The most common condition (plan in [...], country eq "US"): string membership with
        # no intermediate call; other types fall back to the general test.
        strs = spec[1]

        def string_set(ctx: Context) -> bool:
            value = ctx.get(attr)
            if type(value) is str:
                return (value in strs) != invert
            if value is None:
                return False
            result = test(value)
            if result is None:
                return unusable(value)
            return result != invert

        return string_set

    if "." not in attr:

        def simple(ctx: Context) -> bool:
            value = ctx.get(attr)
            if value is None:
                return False
            result = test(value)
            if result is None:
                return unusable(value)
            return result != invert

        return simple

    def nested(ctx: Context) -> bool:
        value = get(ctx)
        if value is None:
            return False
        result = test(value)
        if result is None:
            return unusable(value)
        return result != invert

    return nested


def _all(preds: tuple[Predicate, ...]) -> Predicate:
    """AND of predicates, specialised for the common short lists."""
    if not preds:
        return lambda ctx: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds

        def both(ctx: Context) -> bool:
            return a(ctx) and b(ctx)

        return both

    def every(ctx: Context) -> bool:
        for p in preds:  # noqa: SIM110 -- a plain loop is faster than all(<genexpr>)
            if not p(ctx):
                return False
        return True

    return every


def compile_segments(
    segments: Mapping[str, Segment], reuse: Mapping[str, Predicate] | None = None
) -> dict[str, Predicate]:
    """A membership predicate per segment (segments may reference acyclic other segments;
    they are compiled in dependency order, graph.topological_order).

    ``reuse``: predicates of a previous build for segments that changed neither themselves
    nor through a segment they name (incremental parse); taken as they are.
    """
    done: dict[str, Predicate] = {}
    for key in topological_order(segment_graph(segments)):
        if reuse is not None and key in reuse:
            done[key] = reuse[key]
            continue
        seg = segments[key]
        where = f"segment {key!r}"
        when = _all(tuple(compile_condition(c, done, where) for c in seg.when))
        done[key] = _membership(seg.include, seg.exclude, bool(seg.when), when)
    return done


def _membership(
    include: frozenset[str], exclude: frozenset[str], has_when: bool, when: Predicate
) -> Predicate:
    def member(ctx: Context) -> bool:
        tk = ctx.get("targetingKey")
        if isinstance(tk, str):
            if tk in exclude:
                return False
            if tk in include:
                return True
        return has_when and when(ctx)

    return member


def compile_conditions(
    flag: Flag, segment_tests: Mapping[str, Predicate]
) -> tuple[tuple[CondPlan, ...], ...]:
    """The compiled conditions of each rule of ``flag``: the part of a compiled flag that does
    not depend on the snapshot version (operator values built: regexes, versions, networks),
    so an incremental parse reuses it while the flag and the segments it names are unchanged.
    """
    key = flag.key
    return tuple(
        tuple(_plan(c, segment_tests, f"flag {key!r} rule {rule.id!r}") for c in rule.when)
        for rule in flag.rules
    )


#: id(condition) -> (condition, its plan): one compiled plan per distinct attribute condition
#: (conditions are shared across flags, validate.py), bounded like intern.py's table.
_PLANS: dict[int, tuple[Condition, CondPlan]] = {}


def _plan(cond: Condition, segment_tests: Mapping[str, Predicate], where: str) -> CondPlan:
    """The compiled plan of ``cond``. An attribute condition's plan depends on the condition
    alone, so flags sharing the condition share one plan (its warning about an unusable
    attribute type names the first flag compiled with it); a segment condition's depends on
    the segments' compiled tests and is built per flag."""
    if not OPERATORS[cond.op].uses_attr:
        return CondPlan(compile_condition(cond, segment_tests, where), None)
    held = _PLANS.get(id(cond))
    if held is not None and held[0] is cond:
        return held[1]
    spec = string_set_spec(cond)
    plan = CondPlan(compile_condition(cond, segment_tests, where, spec), spec)
    if len(_PLANS) >= _PLANS_LIMIT:
        _PLANS.clear()
    _PLANS[id(cond)] = (cond, plan)
    return plan


_PLANS_LIMIT = 100_000


def compile_flag(
    flag: Flag,
    segment_tests: Mapping[str, Predicate],
    registry: Mapping[str, Compiled],
    conditions: tuple[tuple[CondPlan, ...], ...] | None = None,
) -> Compiled:
    """The flag's evaluation function (no kind check: evaluate() does that first).

    It returns pre-built resolutions whose ``metadata`` is the flag's own, without
    ``snapshotVersion``: the function is shared by every version the flag is unchanged in,
    and ``evaluate.bind`` gives each ruleset its bound copies (built once, on first use).

    ``registry`` maps flag keys to compiled functions and must already hold every
    prerequisite of ``flag`` (compile in ``graph.topological_order`` of the prerequisite
    graph): the compiled function keeps the prerequisites' functions themselves, not the
    registry, so compiled flags form no reference cycle and a replaced ruleset is freed by
    reference counting alone (a full collection at 10,000 flags stops every thread).
    ``conditions``: ``compile_conditions(flag, segment_tests)``, when already built.
    """
    key = flag.key
    # The flag's own metadata: nothing compiled carries the snapshot version, so a compiled
    # flag serves every version it is unchanged in; evaluate.bind adds ``snapshotVersion``.
    meta = flag.metadata

    def fixed(variant: str, reason: str, rule_id: str | None) -> Resolution:
        return Resolution(
            flag_key=key,
            value=flag.variants[variant],
            variant=variant,
            reason=reason,
            rule_id=rule_id,
            metadata=meta,
        )

    if not flag.enabled:
        disabled = Resolution(key, None, None, Reason.DISABLED, use_default=True, metadata=meta)
        return lambda ctx: disabled

    no_match_reason = Reason.DEFAULT if flag.rules else Reason.STATIC
    tail: Outcome
    if flag.fallthrough is None:
        tail = Resolution(key, None, None, Reason.DEFAULT, use_default=True, metadata=meta)
    else:
        tail = _outcome(flag.fallthrough, None, no_match_reason, fixed, key, meta)

    # Specialised shapes: a flag without rules or prerequisites needs no generated code.
    if not flag.prerequisites and not flag.rules:
        if isinstance(tail, Resolution):
            static = tail
            return lambda ctx: static
        return tail.fn

    if conditions is None:
        conditions = compile_conditions(flag, segment_tests)
    rules: list[tuple[Sequence[CondPlan], Outcome]] = [
        (plans, _outcome(rule.serve, rule.id, Reason.TARGETING_MATCH, fixed, key, meta))
        for rule, plans in zip(flag.rules, conditions, strict=True)
    ]

    prerequisites = None
    if flag.prerequisites:
        prereqs = tuple(
            (p.flag, registry[p.flag], frozenset(p.variants)) for p in flag.prerequisites
        )

        def prerequisites_met(ctx: Context) -> bool:
            for pre_key, pre_fn, wanted in prereqs:
                try:
                    res = pre_fn(ctx)
                except Exception:  # cannot be evaluated -> not met
                    logger.exception("flagapp: prerequisite %r of %r failed", pre_key, key)
                    return False
                if res.use_default or res.variant not in wanted:
                    return False
            return True

        failed = Resolution(
            key, None, None, Reason.PREREQUISITE_FAILED, use_default=True, metadata=meta
        )
        prerequisites = (prerequisites_met, failed)

    if codegen_enabled():
        return generate_flag_function(rules, tail, prerequisites)
    return assemble_closures(rules, tail, prerequisites)


def _outcome(
    serve: Serve,
    rule_id: str | None,
    fixed_reason: str,
    fixed: Callable[[str, str, str | None], Resolution],
    flag_key: str,
    meta: Mapping[str, Any],
) -> Outcome:
    if serve.variant is not None:
        return fixed(serve.variant, fixed_reason, rule_id)
    assert serve.rollout is not None
    return _rollout(serve.rollout, rule_id, fixed, flag_key, meta)
