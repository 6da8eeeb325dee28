"""Read flagd flag definitions (https://flagd.dev/reference/flag-definitions/) as format-v1.

Pure (standard library, and the engine's ``FORMAT_VERSION``), the inverse of
``interop.flagd.export_flagd``: a flagd definitions mapping in, a format-v1 fragment out
(``{"flags": {...}, "segments": {...}}``, each flag with ``enabled``, ``variants``,
``fallthrough``, ``rules`` and the flagapp fields its ``metadata`` names). Like the exporter
it is **exact or refused**: a JSON Logic construct is read only when the engine evaluates the
result with the same value and variant as flagd for contexts whose attributes are strings;
anything else raises ``FlagdImportError`` naming the flag and the JSON path in the flagd
file. ``export_flagd(import_flagd(d))`` gives back ``d`` for every document the exporter
writes (tests/interop/test_flagd_import.py).

What is read (docs/interop.md, "flagd import"):

- ``targeting``: an ``if`` chain (nested ``if`` in the else branch is flattened) whose branches
  name a variant, ``null`` (flagd's ``defaultVariant``) or a ``fractional``; a top-level
  ``fractional``. A condition that is ``or`` at the top of a branch becomes one rule per
  alternative (first match wins, same variant).
- conditions and ``$evaluators``: read by
  :class:`openfeature_provider.interop.flagd_logic.ConditionReader` (the module beside this
  one, which lists them), which this importer extends.
- ``fractional`` with ``bucketing="cbor"`` (flagd-core 2.x): the shorthand only (flagd hashes
  ``cbor([flagKey, targetingKey])`` = ``"hash": "flagd-cbor"``); flagd-core 2.x hashes the
  CBOR of whatever an explicit bucketing expression yields, which no flagapp hash matches.
  With ``bucketing="legacy"`` (flagd-core 1.x): the shorthand (``flagKey + targetingKey``),
  ``{"cat": [{"var": "$flagd.flagKey"} | "salt", {"var": attr}]}`` and ``{"var": attr}`` —
  all ``murmur3-concat``, which hashes exactly ``salt + value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from openfeature_provider.engine import FORMAT_VERSION
from openfeature_provider.exceptions import FlagdImportError

from .flagd_logic import ConditionReader
from .flagd_logic import json_key as _p

__all__ = ["FLAG_METADATA_FIELDS", "FlagdImportError", "as_document", "import_flagd", "infer_kind"]

Bucketing = Literal["cbor", "legacy"]

#: flagd flag ``metadata`` keys that carry flagapp flag fields (what the exporter writes);
#: ``version`` is the state version, derived, and ignored on import.
FLAG_METADATA_FIELDS: Final = {
    "owner": "owner",
    "type": "type",
    "risk": "risk",
    "expiresOn": "expires_on",
}
_DERIVED_METADATA: Final = frozenset({"version"})

_FLAG_KEYS: Final = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})
_TOP_KEYS: Final = frozenset({"$schema", "flags", "$evaluators", "metadata"})


def infer_kind(variants: Mapping[str, Any]) -> str | None:
    """The flagapp kind whose values are exactly ``variants``' values, or ``None`` (mixed)."""
    values = list(variants.values())
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, (dict, list)) for v in values):
        return "object"
    return None


class _Importer(ConditionReader):
    """The flags of one flagd file; the conditions and segments are ``ConditionReader``'s."""

    def __init__(self, defs: Any, bucketing: Bucketing) -> None:
        if bucketing not in ("cbor", "legacy"):
            raise FlagdImportError(None, "bucketing", f"unknown flagd bucketing {bucketing!r}")
        if not isinstance(defs, Mapping):
            raise FlagdImportError(None, "$", "expected a JSON object of flagd definitions")
        unknown = sorted(set(defs) - _TOP_KEYS)
        if unknown:
            raise FlagdImportError(None, "$", f"unknown key(s) {', '.join(unknown)}")
        if not isinstance(defs.get("flags"), Mapping):
            raise FlagdImportError(None, "$.flags", "expected an object of flags")
        evaluators = defs.get("$evaluators") or {}
        if not isinstance(evaluators, Mapping):
            raise FlagdImportError(None, "$.$evaluators", "expected an object")
        super().__init__(evaluators)
        self.defs = defs
        self.bucketing = bucketing

    # -- serving -------------------------------------------------------------------------
    def rollout(self, flag: str, path: str, args: Any, variants: Mapping[str, Any]) -> Any:
        fpath = f"{path}.fractional"
        if not isinstance(args, list) or not args:
            raise FlagdImportError(flag, fpath, "expected a list of [variant, weight]")
        shorthand = isinstance(args[0], list)
        buckets = args if shorthand else args[1:]
        first = 0 if shorthand else 1
        rollout: dict[str, Any] = {}
        if self.bucketing == "cbor":
            if not shorthand:
                raise FlagdImportError(
                    flag,
                    f"{fpath}[0]",
                    "flagd-core 2.x hashes the CBOR encoding of an explicit bucketing "
                    "expression's value, which no flagapp hash reproduces; only the shorthand "
                    '(cbor([flagKey, targetingKey]), "hash": "flagd-cbor") is read. Files '
                    "written for flagd-core 1.x: --flagd-bucketing legacy",
                )
            rollout["hash"] = "flagd-cbor"
        elif not shorthand:
            rollout.update(self.bucket_expression(flag, f"{fpath}[0]", args[0]))
        weights: list[dict[str, Any]] = []
        total = 0
        for i, b in enumerate(buckets):
            bpath = f"{fpath}[{i + first}]"
            if not isinstance(b, list) or not 1 <= len(b) <= 2:
                raise FlagdImportError(flag, bpath, "expected [variant] or [variant, weight]")
            variant = b[0]
            if not isinstance(variant, str):
                raise FlagdImportError(
                    flag,
                    f"{bpath}[0]",
                    "a bucket's variant must be a variant name (computed variants have no "
                    "flagapp form)",
                )
            if variant not in variants:
                raise FlagdImportError(flag, f"{bpath}[0]", f"unknown variant {variant!r}")
            weight = b[1] if len(b) == 2 else 1
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise FlagdImportError(
                    flag,
                    f"{bpath}[1]",
                    "a weight must be an integer (computed weights have no flagapp form)",
                )
            weights.append({"variant": variant, "weight": max(0, weight)})
            total += max(0, weight)
        if total <= 0:
            raise FlagdImportError(
                flag, fpath, "the weights sum to 0 (flagd then answers its defaultVariant)"
            )
        rollout["weights"] = weights
        return {"rollout": rollout}

    def bucket_expression(self, flag: str, path: str, expr: Any) -> dict[str, Any]:
        """flagd-core 1.x hashes the string the expression yields: ``{"var": a}`` is
        ``murmur3-concat`` with salt ``""``; ``{"cat": [salt, {"var": a}]}`` with that salt
        (``{"var": "$flagd.flagKey"}``: the default, the flag key)."""
        if isinstance(expr, Mapping) and set(expr) == {"var"}:
            return {"bucket_by": self.need_var(flag, path, expr), "salt": ""}
        args = expr.get("cat") if isinstance(expr, Mapping) and set(expr) == {"cat"} else None
        if isinstance(args, list) and len(args) == 2:
            out: dict[str, Any] = {}
            prefix = args[0]
            if prefix != {"var": "$flagd.flagKey"}:
                if not isinstance(prefix, str):
                    raise FlagdImportError(
                        flag, f"{path}.cat[0]", 'expected a string or {"var": "$flagd.flagKey"}'
                    )
                out["salt"] = prefix
            bucket_by = self.need_var(flag, f"{path}.cat[1]", args[1])
            if bucket_by != "targetingKey":
                out["bucket_by"] = bucket_by
            return out
        raise FlagdImportError(
            flag,
            path,
            'a bucketing expression is read as {"var": attr} or {"cat": [salt, {"var": attr}]}',
        )

    def serve(self, flag: str, path: str, expr: Any, variants: Mapping[str, Any]) -> Any:
        """A branch's result: a variant name, ``None`` (defaultVariant) or a rollout."""
        if expr is None:
            return None
        if isinstance(expr, str):
            if expr not in variants:
                raise FlagdImportError(flag, path, f"unknown variant {expr!r}")
            return {"variant": expr}
        if isinstance(expr, Mapping) and set(expr) == {"fractional"}:
            return self.rollout(flag, path, expr["fractional"], variants)
        raise FlagdImportError(
            flag,
            path,
            "a targeting branch must name a variant, be null or a fractional (a computed or "
            "non-string result has no flagapp form)",
        )

    def chain(
        self, flag: str, path: str, expr: Any, variants: Mapping[str, Any]
    ) -> tuple[list[tuple[list[list[dict[str, Any]]], Any]], Any]:
        """``([(alternatives, serve)], else)`` of a targeting expression."""
        if isinstance(expr, Mapping) and set(expr) == {"if"}:
            args = expr["if"]
            ipath = f"{path}.if"
            if not isinstance(args, list) or len(args) < 2:
                raise FlagdImportError(flag, ipath, "expected [condition, then, ...]")
            pairs: list[tuple[list[list[dict[str, Any]]], Any]] = []
            for i in range(0, len(args) - 1, 2):
                alternatives = self.alternatives(flag, f"{ipath}[{i}]", args[i])
                served = self.serve(flag, f"{ipath}[{i + 1}]", args[i + 1], variants)
                if served is None:
                    raise FlagdImportError(
                        flag,
                        f"{ipath}[{i + 1}]",
                        "a matching branch answering null (defaultVariant, reason DEFAULT) has "
                        "no flagapp rule form",
                    )
                pairs.append((alternatives, served))
            if len(args) % 2 == 0:
                return pairs, None
            rest_pairs, rest = self.chain(flag, f"{ipath}[{len(args) - 1}]", args[-1], variants)
            return pairs + rest_pairs, rest
        return [], self.serve(flag, path, expr, variants)

    def alternatives(self, flag: str, path: str, expr: Any) -> list[list[dict[str, Any]]]:
        """One AND-list per alternative of a top-level ``or`` (one rule each)."""
        try:
            return [self.when(flag, path, expr)]
        except FlagdImportError:
            if not (isinstance(expr, Mapping) and set(expr) == {"or"}):
                raise
            if not isinstance(expr["or"], list):
                raise
            out: list[list[dict[str, Any]]] = []
            for i, part in enumerate(expr["or"]):
                out += self.alternatives(flag, f'{path}["or"][{i}]', part)
            return out

    # -- flags ---------------------------------------------------------------------------
    def flag(self, key: str, spec: Any) -> dict[str, Any]:
        path = f"$.flags[{_p(key)}]"
        if not isinstance(spec, Mapping):
            raise FlagdImportError(key, path, "expected an object")
        unknown = sorted(set(spec) - _FLAG_KEYS)
        if unknown:
            raise FlagdImportError(key, path, f"unknown key(s) {', '.join(unknown)}")
        state = spec.get("state")
        if state not in ("ENABLED", "DISABLED"):
            raise FlagdImportError(key, f"{path}.state", "expected ENABLED or DISABLED")
        variants = spec.get("variants")
        if not isinstance(variants, Mapping) or not variants:
            raise FlagdImportError(key, f"{path}.variants", "expected a non-empty object")
        if infer_kind(variants) is None:
            raise FlagdImportError(
                key,
                f"{path}.variants",
                "variants of mixed types (a flagapp flag has one kind: boolean, string, "
                "integer, float or object)",
            )
        default = spec.get("defaultVariant")
        if default is not None and (not isinstance(default, str) or default not in variants):
            raise FlagdImportError(key, f"{path}.defaultVariant", f"unknown variant {default!r}")
        rules: list[dict[str, Any]] = []
        fallthrough: Any = {"variant": default} if default is not None else None
        if "targeting" in spec and spec["targeting"] not in (None, {}):
            pairs, rest = self.chain(key, f"{path}.targeting", spec["targeting"], variants)
            for alternatives, served in pairs:
                rules += [{"when": when, "serve": served} for when in alternatives]
            if rest is not None:
                if default is None and "rollout" in rest:
                    fallthrough = rest  # the exporter's form of a fallthrough split
                else:
                    rules.append({"when": [], "serve": rest})
        out: dict[str, Any] = {
            "enabled": state == "ENABLED",
            "variants": dict(variants),
            "fallthrough": fallthrough,
            "rules": rules,
        }
        fields = {}
        for mkey, value in (spec.get("metadata") or {}).items():
            if mkey in FLAG_METADATA_FIELDS:
                fields[FLAG_METADATA_FIELDS[mkey]] = value
            elif mkey not in _DERIVED_METADATA:
                raise FlagdImportError(
                    key,
                    f"{path}.metadata[{_p(mkey)}]",
                    "flagapp flag metadata is derived (owner, type, risk, expiresOn, version); "
                    "other entries have nowhere to go",
                )
        out["fields"] = fields
        return out

    def run(self) -> dict[str, Any]:
        flags = {key: self.flag(key, spec) for key, spec in self.defs["flags"].items()}
        return {"flags": flags, "segments": dict(sorted(self.segments.items()))}


def import_flagd(defs: Any, bucketing: Bucketing = "cbor") -> dict[str, Any]:
    """The format-v1 reading of flagd definitions: ``{"flags": {key: {"enabled",
    "variants", "fallthrough", "rules", "fields"}}, "segments": {name: {"include",
    "exclude", "when"}}}`` (``fields``: the flagapp flag fields the flag's metadata names).
    Raises ``FlagdImportError`` (flag and JSON path) for what flagd would evaluate
    differently."""
    return _Importer(defs, bucketing).run()


def as_document(imported: Mapping[str, Any], environment: str = "flagd") -> dict[str, Any]:
    """A format-v1 ruleset document of an ``import_flagd`` result, for the engine directly
    (tests; the Django import goes through the services instead)."""
    flags = {}
    for key, flag in imported["flags"].items():
        kind = infer_kind(flag["variants"])
        rules = [{"id": f"r{i}", **r} for i, r in enumerate(flag["rules"])]
        flags[key] = {
            "kind": kind,
            **{k: v for k, v in flag.items() if k not in ("fields", "rules")},
            "rules": rules,
        }
    return {
        "format": FORMAT_VERSION,
        "environment": environment,
        "version": 1,
        "etag": "",
        "flags": flags,
        "segments": dict(imported["segments"]),
    }
