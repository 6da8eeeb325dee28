"""The admin's text syntaxes for targeting (pure: no Django admin or forms import; a syntax
mistake raises ``django.core.exceptions.ValidationError``).

Why text syntaxes: rules, rollouts and prerequisites are lists of small structures; a form
field per structure would need nested formsets the admin does not have. One line per item
reads like the rule itself, and every field still round-trips to the ruleset-format JSON
(what is stored and validated by the engine's parser). The syntaxes (docs/admin.md):

- serve (rule or fallthrough): ``on`` (a variant) or ``on:10 off:90`` (a rollout: integer
  weights, in order) optionally followed by ``by=<attribute>``, ``salt=<text>`` and
  ``hash=<algorithm>`` (docs/bucketing.md);
  empty fallthrough = serve the caller's default.
- conditions, one per line: ``[not] <attribute> <operator>[/i] <value>, <value>...``,
  ``<attribute> exists``, ``in_segment <segment>, ...``; values that look like numbers or
  true/false are numbers/booleans, quote them (``"42"``) to keep a string; a line starting
  with ``{`` is one condition in JSON.
- prerequisites, one per line: ``<flag key>: <variant>, <variant>``.
- include/exclude keys: one per line (or separated by commas).
- variant values: text for string flags, ``true``/``false``, numbers, JSON for objects.

Syntax mistakes are field errors here; everything else (unknown variants, bad regexes,
cycles) is the engine's parser, reached through the services, mapped back to the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError

__all__ = [
    "condition_json",
    "condition_line",
    "condition_parts",
    "describe_path",
    "format_conditions",
    "format_prerequisites",
    "format_rules",
    "format_serve",
    "format_value",
    "parse_conditions",
    "parse_keys",
    "parse_prerequisites",
    "parse_rules",
    "parse_serve",
    "parse_value",
]

_LITERAL = re.compile(r"^(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)$")


# --- serve -----------------------------------------------------------------------------------


def parse_serve(text: str, *, allow_empty: bool) -> dict[str, Any] | None:
    text = (text or "").strip()
    if not text:
        if allow_empty:
            return None
        raise ValidationError("Say what to serve: a variant (on) or weights (on:10 off:90).")
    weights: list[dict[str, Any]] = []
    options: dict[str, str] = {}
    plain: list[str] = []
    for token in re.split(r"[\s,]+", text):
        if not token:
            continue
        if "=" in token:
            name, _, value = token.partition("=")
            if name not in ("by", "salt", "hash") or not value:
                raise ValidationError(
                    f"{token!r}: options are by=<attribute>, salt=<text> and hash=<algorithm>"
                )
            options[name] = value
        elif ":" in token:
            variant, _, weight = token.rpartition(":")
            if not variant or not re.fullmatch(r"\d+", weight):
                raise ValidationError(f"{token!r}: a weight is <variant>:<whole number>")
            weights.append({"variant": variant, "weight": int(weight)})
        else:
            plain.append(token)
    if plain and (weights or options or len(plain) > 1):
        raise ValidationError(
            "Either one variant (on) or a list of weights (on:10 off:90), not both."
        )
    if plain:
        return {"variant": plain[0]}
    if not weights:
        raise ValidationError("A rollout needs weights (on:10 off:90).")
    rollout: dict[str, Any] = {"weights": weights}
    if "by" in options:
        rollout["bucket_by"] = options["by"]
    if "salt" in options:
        rollout["salt"] = options["salt"]
    if "hash" in options:
        rollout["hash"] = options["hash"]
    return {"rollout": rollout}


def format_serve(serve: Mapping[str, Any] | None) -> str:
    if not serve:
        return ""
    if serve.get("variant") is not None:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    parts = [f"{w.get('variant')}:{w.get('weight')}" for w in rollout.get("weights", [])]
    if rollout.get("bucket_by") not in (None, "targetingKey"):
        parts.append(f"by={rollout['bucket_by']}")
    if rollout.get("salt") is not None:
        parts.append(f"salt={rollout['salt']}")
    if rollout.get("hash") is not None:
        parts.append(f"hash={rollout['hash']}")
    return " ".join(parts)


# --- conditions ------------------------------------------------------------------------------


def _operators() -> Mapping[str, Any]:
    from openfeature_provider.engine.operators import OPERATORS

    return OPERATORS


def _split_values(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            buf.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    if quoted:
        raise ValidationError("an opening double quote is not closed")
    out.append("".join(buf).strip())
    return [v for v in out if v != ""]


def _parse_scalar(token: str) -> Any:
    if token.startswith('"'):
        try:
            return json.loads(token)
        except ValueError:
            raise ValidationError(f"{token}: not a valid quoted string") from None
    if _LITERAL.match(token):
        return json.loads(token)
    return token


def _format_scalar(value: Any) -> str:
    if isinstance(value, str):
        needs_quotes = (
            len(value.splitlines()) != 1  # empty, or a line break of any kind
            or value != value.strip()
            or "," in value
            or ";" in value
            or '"' in value
            or bool(_LITERAL.match(value))
        )
        if not needs_quotes:
            return value
        text = json.dumps(value, ensure_ascii=False)
        # Keep one condition on one line: escape line separators JSON leaves raw.
        return text if len(text.splitlines()) == 1 else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def parse_conditions(text: str) -> list[dict[str, Any]]:
    ops = _operators()
    out: list[dict[str, Any]] = []
    for n, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                cond = json.loads(line)
            except ValueError as exc:
                raise ValidationError(f"line {n}: invalid JSON ({exc})") from None
            out.append(cond)
            continue
        negate = False
        if line.startswith("not "):
            negate = True
            line = line[4:].strip()
        head, _, rest = line.partition(" ")
        if head in ops and not ops[head].uses_attr:
            cond = {"op": head, "values": [_parse_scalar(v) for v in _split_values(rest)]}
        else:
            attr = head
            op_token, _, rest = rest.strip().partition(" ")
            if not op_token:
                raise ValidationError(
                    f"line {n}: expected '<attribute> <operator> <values>' (e.g. plan in pro)"
                )
            ci = op_token.endswith("/i")
            op = op_token[:-2] if ci else op_token
            if op not in ops:
                raise ValidationError(
                    f"line {n}: unknown operator {op!r}; one of {', '.join(sorted(ops))}"
                )
            cond = {"attr": attr, "op": op}
            values = [_parse_scalar(v) for v in _split_values(rest)]
            if values:
                cond["values"] = values
            if ci:
                cond["case_insensitive"] = True
        if negate:
            cond["negate"] = True
        out.append(cond)
    return out


def _plain_attr(attr: Any, ops: Mapping[str, Any]) -> bool:
    """An attribute the line syntax can carry (else the condition is written as JSON)."""
    return (
        isinstance(attr, str)
        and re.fullmatch(r"[^\s\"{#\[][^\s]*", attr) is not None
        and attr != "not"
        and not (attr in ops and not ops[attr].uses_attr)
    )


def condition_parts(cond: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pieces of one condition's line — ``negate``, ``attr`` (``None`` for the segment
    operators), ``op``, ``ci`` and ``values`` as the tokens the line shows — or ``None``
    when the condition can only be written as JSON.

    The visual editor (``flagapp.admin.editor``) edits these pieces and joins them the way
    :func:`condition_line` does, so both editors write the same text."""
    ops = _operators()
    op = cond.get("op")
    known = {"attr", "op", "values", "negate", "case_insensitive"}
    simple = (
        isinstance(op, str)
        and op in ops
        and set(cond) <= known
        and (not ops[op].uses_attr or _plain_attr(cond.get("attr"), ops))
        and isinstance(cond.get("values", []), list)
        and all(isinstance(v, str | int | float | bool) for v in cond.get("values", []))
    )
    if not simple:
        return None
    uses_attr = ops[str(op)].uses_attr
    return {
        "negate": bool(cond.get("negate")),
        "attr": cond.get("attr") if uses_attr else None,
        "op": str(op),
        "ci": bool(cond.get("case_insensitive")) if uses_attr else False,
        "values": [_format_scalar(v) for v in cond.get("values", [])],
    }


def condition_line(parts: Mapping[str, Any]) -> str:
    """The line of :func:`condition_parts`' pieces (the inverse of one line of
    :func:`parse_conditions`)."""
    line = str(parts["op"])
    if parts.get("attr") is not None:
        line = f"{parts['attr']} {line}{'/i' if parts.get('ci') else ''}"
    if parts.get("values"):
        line = f"{line} {', '.join(parts['values'])}"
    return f"not {line}" if parts.get("negate") else line


def condition_json(cond: Mapping[str, Any]) -> str:
    """A condition the line syntax cannot carry, as the one-line JSON both editors show."""
    return json.dumps(cond, ensure_ascii=False, sort_keys=True)


def format_conditions(conditions: Sequence[Mapping[str, Any]] | None) -> str:
    lines = []
    for cond in conditions or []:
        parts = condition_parts(cond)
        lines.append(condition_json(cond) if parts is None else condition_line(parts))
    return "\n".join(lines)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse_rules(text: str) -> list[dict[str, Any]]:
    """One rule per line, in order: ``[id] <condition>; <condition> => <serve>``. The id is
    optional (generated); no conditions (``=> on``) matches everyone."""
    out: list[dict[str, Any]] = []
    for n, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rule_id = None
        m = re.match(r"^\[([^\]]*)\]\s*(.*)$", line)
        if m:
            rule_id = m.group(1).strip() or None
            line = m.group(2)
        conditions_text, arrow, serve_text = line.rpartition("=>")
        if not arrow:
            raise ValidationError(f"line {n}: expected '[id] <condition>; <condition> => <serve>'")
        try:
            conditions = parse_conditions("\n".join(_split_outside_quotes(conditions_text, ";")))
            serve = parse_serve(serve_text, allow_empty=False)
        except ValidationError as exc:
            raise ValidationError(f"line {n}: {' '.join(exc.messages)}") from None
        out.append({"id": rule_id, "when": conditions, "serve": serve})
    return out


def format_rules(rules: Sequence[tuple[str, Any, Any]]) -> str:
    """``(rule_id, conditions, serve)`` rows -> the text of :func:`parse_rules`."""
    lines = []
    for rule_id, conditions, serve in rules:
        when = "; ".join(format_conditions(conditions).splitlines())
        lines.append(f"[{rule_id}] {when} => {format_serve(serve)}".replace("]  =>", "] =>"))
    return "\n".join(lines)


# --- prerequisites, keys, values ---------------------------------------------------------------


def parse_prerequisites(text: str) -> list[dict[str, Any]]:
    out = []
    for n, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        flag, sep, variants = line.partition(":")
        names = [v.strip() for v in variants.split(",") if v.strip()]
        if not sep or not flag.strip() or not names:
            raise ValidationError(f"line {n}: expected '<flag key>: <variant>, <variant>'")
        out.append({"flag": flag.strip(), "variants": names})
    return out


def format_prerequisites(prerequisites: Sequence[Mapping[str, Any]] | None) -> str:
    return "\n".join(
        f"{p.get('flag')}: {', '.join(str(v) for v in p.get('variants', []))}"
        for p in prerequisites or []
    )


def parse_keys(text: str) -> list[str]:
    seen: list[str] = []
    for token in re.split(r"[\n,]+", text or ""):
        token = token.strip()
        if token and token not in seen:
            seen.append(token)
    return seen


def parse_value(kind: str, text: str) -> Any:
    """A variant value typed in a form, read according to the flag's kind."""
    text = text if isinstance(text, str) else str(text)
    if kind == "string":
        return text
    stripped = text.strip()
    if kind == "boolean":
        if stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        raise ValidationError("a boolean flag's values are true or false")
    if kind == "integer":
        if re.fullmatch(r"-?\d+", stripped):
            return int(stripped)
        raise ValidationError("an integer flag's values are whole numbers")
    if kind == "float":
        try:
            value = float(stripped)
        except ValueError:
            raise ValidationError("a float flag's values are numbers") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError("a float flag's values are finite numbers")
        return value
    try:
        value = json.loads(stripped)
    except ValueError as exc:
        raise ValidationError(f"an object flag's values are JSON ({exc})") from None
    if not isinstance(value, dict | list):
        raise ValidationError("an object flag's values are JSON objects or arrays")
    return value


def format_value(kind: str, value: Any) -> str:
    if kind == "string" and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


#: ``rules[0]`` reads "rule 1": the singular of each list the ruleset format nests.
_PATH_ITEMS = {
    "rules": "rule",
    "when": "condition",
    "values": "value",
    "weights": "weight",
    "prerequisites": "prerequisite",
    "variants": "variant",
    "flags": "flag",
    "include": "included key",
    "exclude": "excluded key",
    "conditions": "condition",
}
_PATH_WORDS = {"serve": "serve", "rollout": "split", "bucket_by": "by", "attr": "attribute"}
_PATH_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): ")


def describe_path(message: str) -> str:
    """A validation message with its leading ruleset path in words.

    The engine's parser names places as paths (``rules[1].when[0].values[0]: ...``), exact
    but written for programs; a person reads "Rule 2, condition 1, value 1: ...". Messages
    without a leading path are returned unchanged.
    """
    match = _PATH_PREFIX.match(message)
    if match is None or ("[" not in match.group(1) and "." not in match.group(1)):
        return message
    words = []
    for part in match.group(1).split("."):
        name, _, index = part.partition("[")
        if index:
            words.append(f"{_PATH_ITEMS.get(name, name.replace('_', ' '))} {int(index[:-1]) + 1}")
        else:
            words.append(_PATH_WORDS.get(name, name.replace("_", " ")))
    text = ", ".join(words)
    return f"{text[:1].upper()}{text[1:]}: {message[match.end() :]}"
