"""Find the django-waffle call sites left in a code base (``flagapp_code_refs --waffle``).

The compatibility layer lets call sites move at the team's pace; this scan says how many
are left and which flagapp key each one should become, so the last step of the migration
(removing waffle) is a checklist, not a guess. A plain text scan, like
:mod:`flagapp.governance.coderefs` (same file extensions and skipped directories):

- Python: ``switch_is_active("n")``, ``sample_is_active("n")``, ``@waffle_flag("n")``,
  ``@waffle_switch("n")``, ``waffle_flag = "n"`` / ``waffle_switch`` / ``waffle_sample``
  (mixins), and — in files that import waffle, since flagapp has a ``flag_is_active`` too —
  ``flag_is_active(request, "n")`` and ``override_flag/switch/sample("n", ...)``; every
  ``import waffle`` / ``from waffle... import`` line.
- Templates: ``{% switch "n" %}``, ``{% sample "n" %}``, ``{% load waffle_tags %}``, and
  ``{% flag "n" %}`` in templates that load ``waffle_tags``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flagapp.governance.coderefs import iter_source_files

from .keys import key_for

__all__ = ["WaffleRef", "report", "scan_paths", "scan_text"]

_NAME = r"""(?P<q>["'])!?(?P<name>[^"'\n]+?)(?P=q)"""
_ARG = r"""[^,()'"]+(?:\([^()]*\))?\s*,\s*"""

_ALWAYS: list[tuple[str, re.Pattern[str]]] = [
    ("switch", re.compile(r"\bswitch_is_active\s*\(\s*" + _NAME)),
    ("sample", re.compile(r"\bsample_is_active\s*\(\s*" + _NAME)),
    ("decorator", re.compile(r"(?<!def )\bwaffle_(?P<kind>flag|switch)\s*\(\s*" + _NAME)),
    ("mixin", re.compile(r"\bwaffle_(?P<kind>flag|switch|sample)\s*(?::[^=\n]*)?=\s*" + _NAME)),
    ("template", re.compile(r"\{%-?\s*(?P<kind>switch|sample)\s+" + _NAME)),
    (
        "import",
        re.compile(
            r"^[ \t]*(?:from[ \t]+waffle(?:\.[\w.]+)?[ \t]+import|import[ \t]+waffle)\b", re.M
        ),
    ),
    ("template_load", re.compile(r"\{%-?\s*load\s+(?:[\w ]+\s)?waffle_tags\b")),
]
#: Only where the file uses waffle (flagapp has a flag_is_active, override_flag, {% flag %}).
_IF_WAFFLE: list[tuple[str, re.Pattern[str]]] = [
    ("flag", re.compile(r"\bflag_is_active\s*\(\s*" + _ARG + _NAME)),
    ("testutils", re.compile(r"\boverride_(?P<kind>flag|switch|sample)\s*\(\s*" + _NAME)),
    ("template", re.compile(r"\{%-?\s*(?P<kind>flag)\s+" + _NAME)),
]


@dataclass(frozen=True, order=True)
class WaffleRef:
    """One waffle call site: ``kind`` is flag/switch/sample (``import`` for an import line),
    ``key`` the flagapp key it reads after the import (None for imports)."""

    path: str
    line: int
    kind: str
    name: str
    key: str | None
    form: str


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def scan_text(text: str, path: str) -> Iterator[WaffleRef]:
    if "waffle" not in text and "_is_active" not in text and "{%" not in text:
        return
    uses_waffle = False
    found: list[WaffleRef] = []
    for form, regex in _ALWAYS:
        for m in regex.finditer(text):
            line = _line_of(text, m.start())
            if form in ("import", "template_load"):
                uses_waffle = True
                found.append(WaffleRef(path, line, "import", m.group(0).strip(), None, form))
                continue
            kind = m.groupdict().get("kind") or form
            name = m.group("name")
            found.append(WaffleRef(path, line, kind, name, key_for(kind, name), form))
    if uses_waffle:
        for form, regex in _IF_WAFFLE:
            for m in regex.finditer(text):
                kind = m.groupdict().get("kind") or form
                name = m.group("name")
                line = _line_of(text, m.start())
                found.append(WaffleRef(path, line, kind, name, key_for(kind, name), form))
    yield from sorted(set(found))


def scan_paths(paths: Iterable[str | os.PathLike[str]]) -> list[WaffleRef]:
    refs: list[WaffleRef] = []
    for file in iter_source_files(paths):
        refs.extend(scan_text(file.read_text(encoding="utf-8", errors="replace"), str(file)))
    return sorted(refs)


def report(
    paths: Sequence[str], known_keys: Iterable[str], *, as_json: bool = False
) -> tuple[str, int]:
    """The ``flagapp_code_refs --waffle`` text (or JSON) and the number of sites left."""
    refs = scan_paths(paths)
    known = set(known_keys)
    if as_json:
        doc: dict[str, Any] = {
            "waffle_call_sites": [
                {**asdict(r), "imported": r.key in known if r.key else None} for r in refs
            ]
        }
        return json.dumps(doc, indent=2), len(refs)
    if not refs:
        return "no django-waffle call sites left", 0
    lines = [f"django-waffle call sites left ({len(refs)}):"]
    for r in refs:
        if r.key is None:
            lines.append(f"  {r.path}:{r.line}  {r.name}")
        else:
            state = "imported" if r.key in known else "NOT imported"
            lines.append(f"  {r.path}:{r.line}  {r.kind} {r.name!r} -> {r.key} ({state})")
    return "\n".join(lines), len(refs)
