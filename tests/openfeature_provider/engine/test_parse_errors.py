"""parse_ruleset rejects bad documents whole, with a ParseError naming the JSON path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from openfeature_provider.engine import ParseError, Ruleset, parse_ruleset
from openfeature_provider.engine.operators import MAX_REGEX_LENGTH

F = '$.flags["a.flag"]'


def base() -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "prod",
        "version": 3,
        "etag": "e",
        "flags": {
            "a.flag": {
                "kind": "boolean",
                "enabled": True,
                "variants": {"on": True, "off": False},
                "rules": [
                    {
                        "id": "r1",
                        "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
            },
            "b.flag": {
                "kind": "string",
                "enabled": True,
                "variants": {"x": "X"},
                "fallthrough": {"variant": "x"},
            },
        },
        "segments": {"seg": {"include": ["u1"]}},
    }


Mutation = Callable[[dict[str, Any]], object]


def flag(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["flags"]["a.flag"]
    return result


def cond(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = flag(doc)["rules"][0]["when"][0]
    return result


def set_cond(**kw: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        c = cond(doc)
        c.clear()
        c.update(kw)

    return mutate


def rollout(weights: Any, **kw: Any) -> Mutation:
    return lambda d: flag(d).__setitem__("fallthrough", {"rollout": {"weights": weights, **kw}})


BAD: list[tuple[str, Mutation, str, str]] = [
    # (id, mutation, expected path, message fragment)
    ("format-2", lambda d: d.__setitem__("format", 2), "$.format", "unsupported format"),
    ("format-str", lambda d: d.__setitem__("format", "1"), "$.format", "unsupported format"),
    ("missing-flags", lambda d: d.pop("flags"), "$", "missing key 'flags'"),
    ("missing-version", lambda d: d.pop("version"), "$", "missing key 'version'"),
    ("version-bool", lambda d: d.__setitem__("version", True), "$.version", "integer"),
    ("unknown-top-key", lambda d: d.__setitem__("flagz", {}), '$["flagz"]', "unknown key"),
    ("flags-list", lambda d: d.__setitem__("flags", []), "$.flags", "expected an object"),
    ("flag-not-object", lambda d: d["flags"].__setitem__("a.flag", 1), F, "expected an object"),
    ("unknown-kind", lambda d: flag(d).__setitem__("kind", "bool"), f"{F}.kind", "unknown kind"),
    ("missing-enabled", lambda d: flag(d).pop("enabled"), F, "missing key 'enabled'"),
    ("enabled-int", lambda d: flag(d).__setitem__("enabled", 1), f"{F}.enabled", "boolean"),
    ("unknown-flag-key", lambda d: flag(d).__setitem__("x", 1), f'{F}["x"]', "unknown key"),
    ("no-variants", lambda d: flag(d).__setitem__("variants", {}), f"{F}.variants", "at least"),
    (
        "bool-variant-string",
        lambda d: flag(d)["variants"].__setitem__("on", "yes"),
        f'{F}.variants["on"]',
        "boolean flag cannot have a variant value of type string",
    ),
    (
        "integer-variant-bool",
        lambda d: d["flags"].__setitem__(
            "a.flag", {"kind": "integer", "enabled": True, "variants": {"n": True}}
        ),
        f'{F}.variants["n"]',
        "integer flag cannot",
    ),
    (
        "integer-variant-float",
        lambda d: d["flags"].__setitem__(
            "a.flag", {"kind": "integer", "enabled": True, "variants": {"n": 1.5}}
        ),
        f'{F}.variants["n"]',
        "integer flag cannot",
    ),
    (
        "float-variant-bool",
        lambda d: d["flags"].__setitem__(
            "a.flag", {"kind": "float", "enabled": True, "variants": {"n": False}}
        ),
        f'{F}.variants["n"]',
        "float flag cannot",
    ),
    (
        "object-variant-string",
        lambda d: d["flags"].__setitem__(
            "a.flag", {"kind": "object", "enabled": True, "variants": {"n": "{}"}}
        ),
        f'{F}.variants["n"]',
        "object flag cannot",
    ),
    (
        "served-variant-undefined",
        lambda d: flag(d)["rules"][0]["serve"].__setitem__("variant", "maybe"),
        f"{F}.rules[0].serve.variant",
        "not defined",
    ),
    (
        "fallthrough-variant-undefined",
        lambda d: flag(d).__setitem__("fallthrough", {"variant": "nope"}),
        f"{F}.fallthrough.variant",
        "not defined",
    ),
    (
        "serve-both",
        lambda d: flag(d).__setitem__("fallthrough", {"variant": "on", "rollout": {"weights": []}}),
        f"{F}.fallthrough",
        "exactly one",
    ),
    (
        "serve-neither",
        lambda d: flag(d).__setitem__("fallthrough", {}),
        f"{F}.fallthrough",
        "exactly one",
    ),
    (
        "weight-negative",
        rollout([{"variant": "on", "weight": -1}, {"variant": "off", "weight": 2}]),
        f"{F}.fallthrough.rollout.weights[0].weight",
        "non-negative integers",
    ),
    (
        "weight-float",
        rollout([{"variant": "on", "weight": 0.5}]),
        f"{F}.fallthrough.rollout.weights[0].weight",
        "non-negative integers",
    ),
    (
        "weight-bool",
        rollout([{"variant": "on", "weight": True}]),
        f"{F}.fallthrough.rollout.weights[0].weight",
        "non-negative integers",
    ),
    (
        "weights-sum-zero",
        rollout([{"variant": "on", "weight": 0}, {"variant": "off", "weight": 0}]),
        f"{F}.fallthrough.rollout.weights",
        "sum to 0",
    ),
    ("weights-empty", rollout([]), f"{F}.fallthrough.rollout.weights", "at least one"),
    (
        "weights-undefined-variant",
        rollout([{"variant": "maybe", "weight": 1}]),
        f"{F}.fallthrough.rollout.weights[0].variant",
        "not defined",
    ),
    (
        "weights-duplicate",
        rollout([{"variant": "on", "weight": 1}, {"variant": "on", "weight": 1}]),
        f"{F}.fallthrough.rollout.weights[1].variant",
        "listed twice",
    ),
    (
        "bucket-by-empty-part",
        rollout([{"variant": "on", "weight": 1}], bucket_by="a..b"),
        f"{F}.fallthrough.rollout.bucket_by",
        "invalid attribute path",
    ),
    (
        "salt-number",
        rollout([{"variant": "on", "weight": 1}], salt=5),
        f"{F}.fallthrough.rollout.salt",
        "expected a string",
    ),
    (
        "unknown-op",
        set_cond(attr="a", op="equals", values=["x"]),
        f"{F}.rules[0].when[0].op",
        "unknown operator",
    ),
    ("op-missing", set_cond(attr="a", values=["x"]), f"{F}.rules[0].when[0]", "missing key 'op'"),
    ("attr-missing", set_cond(op="eq", values=["x"]), f"{F}.rules[0].when[0]", "needs an 'attr'"),
    (
        "attr-empty-part",
        set_cond(attr="a.", op="eq", values=["x"]),
        f"{F}.rules[0].when[0].attr",
        "invalid",
    ),
    ("values-missing", set_cond(attr="a", op="eq"), f"{F}.rules[0].when[0].values", "at least one"),
    (
        "values-not-list",
        set_cond(attr="a", op="eq", values="x"),
        f"{F}.rules[0].when[0].values",
        "array",
    ),
    (
        "values-null-item",
        set_cond(attr="a", op="eq", values=["x", None]),
        f"{F}.rules[0].when[0].values[1]",
        "got null",
    ),
    (
        "values-object-item",
        set_cond(attr="a", op="in", values=[{}]),
        f"{F}.rules[0].when[0].values[0]",
        "got object",
    ),
    (
        "exists-with-values",
        set_cond(attr="a", op="exists", values=[1]),
        f"{F}.rules[0].when[0].values",
        "takes no values",
    ),
    (
        "negate-string",
        set_cond(attr="a", op="eq", values=["x"], negate="yes"),
        f"{F}.rules[0].when[0].negate",
        "boolean",
    ),
    (
        "ci-int",
        set_cond(attr="a", op="eq", values=["x"], case_insensitive=1),
        f"{F}.rules[0].when[0].case_insensitive",
        "boolean",
    ),
    (
        "lt-string",
        set_cond(attr="a", op="lt", values=["5"]),
        f"{F}.rules[0].when[0].values[0]",
        "expected a number",
    ),
    (
        "lt-bool",
        set_cond(attr="a", op="gte", values=[True]),
        f"{F}.rules[0].when[0].values[0]",
        "expected a number",
    ),
    (
        "starts-with-number",
        set_cond(attr="a", op="starts_with", values=[1]),
        f"{F}.rules[0].when[0].values[0]",
        "expected a string",
    ),
    (
        "regex-bad",
        set_cond(attr="a", op="matches", values=["ok", "(unclosed"]),
        f"{F}.rules[0].when[0].values[1]",
        "does not compile",
    ),
    (
        "regex-too-long",
        set_cond(attr="a", op="matches", values=["a" * (MAX_REGEX_LENGTH + 1)]),
        f"{F}.rules[0].when[0].values[0]",
        "longer than",
    ),
    (
        "semver-bad",
        set_cond(attr="a", op="semver_lt", values=["1.2"]),
        f"{F}.rules[0].when[0].values[0]",
        "SemVer",
    ),
    (
        "semver-leading-zero",
        set_cond(attr="a", op="semver_eq", values=["01.2.3"]),
        f"{F}.rules[0].when[0].values[0]",
        "SemVer",
    ),
    (
        "date-naive",
        set_cond(attr="a", op="before", values=["2024-01-01T00:00:00"]),
        f"{F}.rules[0].when[0].values[0]",
        "offset",
    ),
    (
        "date-garbage",
        set_cond(attr="a", op="after", values=["tomorrow"]),
        f"{F}.rules[0].when[0].values[0]",
        "offset",
    ),
    (
        "cidr-bad",
        set_cond(attr="a", op="in_cidr", values=["10.0.0.0/33"]),
        f"{F}.rules[0].when[0].values[0]",
        "not an IP network",
    ),
    (
        "segment-undefined",
        set_cond(op="in_segment", values=["nope"]),
        f"{F}.rules[0].when[0].values[0]",
        "undefined segment",
    ),
    (
        "segment-with-attr",
        set_cond(op="in_segment", attr="a", values=["seg"]),
        f"{F}.rules[0].when[0].attr",
        "takes no 'attr'",
    ),
    (
        "rule-id-missing",
        lambda d: flag(d)["rules"][0].pop("id"),
        f"{F}.rules[0]",
        "missing key 'id'",
    ),
    (
        "rule-id-duplicate",
        lambda d: flag(d)["rules"].append(copy.deepcopy(flag(d)["rules"][0])),
        f"{F}.rules[1].id",
        "duplicate",
    ),
    ("rules-object", lambda d: flag(d).__setitem__("rules", {}), f"{F}.rules", "array"),
    (
        "when-object",
        lambda d: flag(d)["rules"][0].__setitem__("when", {}),
        f"{F}.rules[0].when",
        "array",
    ),
    (
        "metadata-nested",
        lambda d: flag(d).__setitem__("metadata", {"owner": {"team": "x"}}),
        f'{F}.metadata["owner"]',
        "metadata values",
    ),
    (
        "prerequisite-undefined",
        lambda d: flag(d).__setitem__("prerequisites", [{"flag": "zzz", "variants": ["on"]}]),
        f"{F}.prerequisites[0].flag",
        "undefined prerequisite",
    ),
    (
        "prerequisite-variant-undefined",
        lambda d: flag(d).__setitem__("prerequisites", [{"flag": "b.flag", "variants": ["on"]}]),
        f"{F}.prerequisites[0].variants[0]",
        "has no variant",
    ),
    (
        "prerequisite-self",
        lambda d: flag(d).__setitem__("prerequisites", [{"flag": "a.flag", "variants": ["on"]}]),
        f"{F}.prerequisites",
        "cycle",
    ),
    (
        "prerequisite-cycle",
        lambda d: (
            flag(d).update(prerequisites=[{"flag": "b.flag", "variants": ["x"]}]),
            d["flags"]["b.flag"].update(prerequisites=[{"flag": "a.flag", "variants": ["on"]}]),
        ),
        f"{F}.prerequisites",
        "prerequisite cycle: a.flag -> b.flag -> a.flag",
    ),
    (
        "segment-cycle",
        lambda d: d["segments"].update(
            {
                "s1": {"when": [{"op": "in_segment", "values": ["s2"]}]},
                "s2": {"when": [{"op": "not_in_segment", "values": ["s1"]}]},
            }
        ),
        '$.segments["s1"]',
        "segment cycle",
    ),
    (
        "segment-include-number",
        lambda d: d["segments"]["seg"].__setitem__("include", [1]),
        '$.segments["seg"].include[0]',
        "expected a string",
    ),
    (
        "segment-unknown-key",
        lambda d: d["segments"]["seg"].__setitem__("includes", []),
        '$.segments["seg"]["includes"]',
        "unknown key",
    ),
]


def test_base__valid_document__parses() -> None:
    rs = parse_ruleset(base())
    assert isinstance(rs, Ruleset)
    assert (rs.environment, rs.version, rs.etag) == ("prod", 3, "e")


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_parse__invalid_document__raises_parse_error_with_path(
    mutate: Mutation, path: str, fragment: str
) -> None:
    doc = base()
    mutate(doc)
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path == path
    assert fragment in info.value.message
    assert str(info.value).startswith(path)


def test_parse__json_text_and_bytes__same_as_mapping() -> None:
    text = json.dumps(base())
    assert parse_ruleset(text) == parse_ruleset(base())
    assert parse_ruleset(text.encode()) == parse_ruleset(base())


@pytest.mark.parametrize("bad", ["{", b"\xff\xfe", "[]", "null", "42"])
def test_parse__not_a_json_object__raises_at_root(bad: str | bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_ruleset(bad)
    assert info.value.path == "$"


def test_parse__integral_float_variants__stored_as_float() -> None:
    doc = base()
    doc["flags"]["f.flag"] = {"kind": "float", "enabled": True, "variants": {"one": 1}}
    value = parse_ruleset(doc).flags["f.flag"].variants["one"]
    assert value == 1.0
    assert type(value) is float


def test_parse__flag_key_with_quotes__path_is_json_escaped() -> None:
    doc = base()
    doc["flags"]['we"ird'] = {"kind": "nope", "enabled": True, "variants": {"a": 1}}
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path == '$.flags["we\\"ird"].kind'


def test_parse__valid_document__input_not_mutated() -> None:
    doc = base()
    before = copy.deepcopy(doc)
    parse_ruleset(doc)
    assert doc == before


def test_parse__success_or_failure__garbage_collector_left_enabled() -> None:
    import gc

    assert gc.isenabled()
    parse_ruleset(base())
    with pytest.raises(ParseError):
        parse_ruleset("{")
    assert gc.isenabled()


def test_parse__collector_disabled_by_caller__left_disabled() -> None:
    import gc

    gc.disable()
    try:
        parse_ruleset(base())
        assert not gc.isenabled()
    finally:
        gc.enable()
