"""Find flag keys in source code, to spot dead configuration and unmanaged flags.

A flag that no code reads is configuration nobody needs (and a risk: someone may flip it
thinking it does something). A key that code reads but the server does not know is an
unmanaged flag: every evaluation silently serves the code's default. Both are found by a
plain text scan with regular expressions, because that works on any language and needs no
import of the scanned code. The patterns are configurable
(``FLAGAPP["CODE_REF_PATTERNS"]``): each is a regular expression with a named group ``key``.

This module needs neither Django nor the ORM; ``flagapp_code_refs`` wires it to the flags.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_EXTENSIONS",
    "DEFAULT_PATTERNS",
    "SKIP_DIRS",
    "CodeRef",
    "CodeRefReport",
    "compare",
    "compile_patterns",
    "iter_source_files",
    "scan_paths",
    "scan_text",
]

#: A quoted key; a leading "!" (the negation of ``@flag_required("!k")``) is not part of it.
_Q = r"""(?P<q>["'`])!?(?P<key>[A-Za-z0-9][A-Za-z0-9_.:/-]*)(?P=q)"""
#: One positional argument before the key (``flag_is_active(request, "k")``).
_ARG = r"""[^,()'"]+(?:\([^()]*\))?\s*,\s*"""

#: name -> regular expression with a ``key`` group. The names appear in the report so a
#: reader knows which kind of reference was found.
DEFAULT_PATTERNS: Mapping[str, str] = {
    # flagapp.evaluate("k", ...), aevaluate("k", ...), @flag_required("k"), @flag_required("!k"),
    # FlagPermission.for_flag("k") -- the key first, positional or as a keyword.
    "python": (
        r"\b(?:a?evaluate|flag_required|for_flag)\s*\(\s*(?:(?:key|flag_key|spec)\s*=\s*)?" + _Q
    ),
    # flag_is_active(request, "k"), get_value(request, "k", default) and their async twins:
    # the key second, or as key=.
    "python_request_first": (
        r"\b(?:a?flag_is_active|a?get_value)\s*\(\s*(?:" + _ARG + r"|.*?\bkey\s*=\s*)" + _Q
    ),
    # class MyView(FlagRequiredMixin, ...): required_flag = "k"
    "python_attribute": r"\brequired_flag\s*=\s*" + _Q,
    # {% flag "k" %}, {% flag "!k" %}, {% flag_value "k" default as x %}
    "template": r"\{%-?\s*flag(?:_value)?\s+" + _Q,
    # OpenFeature clients: client.get_boolean_value("k", ...), get_string_details(flag_key="k")
    # and the camelCase SDKs (getBooleanValue('k'), getNumberDetails("k") ...).
    "openfeature": (
        r"\b(?:get_(?:boolean|string|integer|float|object)_(?:value|details)"
        r"|get(?:Boolean|String|Number|Integer|Float|Object)(?:Value|Details))"
        r"\s*\(\s*(?:flag_key\s*=\s*)?" + _Q
    ),
}

#: Substrings one of which must occur for a default pattern to match at all: a file
#: without any is skipped for that pattern (re has no fast path for a leading alternation,
#: so this makes the scan several times faster on ordinary code).
_NEEDLES: Mapping[str, tuple[str, ...]] = {
    DEFAULT_PATTERNS["python"]: ("evaluate", "flag_required", "for_flag"),
    DEFAULT_PATTERNS["python_request_first"]: ("flag_is_active", "get_value"),
    DEFAULT_PATTERNS["python_attribute"]: ("required_flag",),
    DEFAULT_PATTERNS["template"]: ("{%",),
    DEFAULT_PATTERNS["openfeature"]: ("_value", "_details", "Value", "Details"),
}

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".py",
    ".html",
    ".txt",
    ".jinja",
    ".jinja2",
    ".js",
    ".jsx",
    ".ts",
    ".tsx",
    ".go",
    ".java",
    ".kt",
    ".rb",
    ".cs",
    ".php",
)

#: Directories never worth scanning: dependencies and tool caches hold other people's keys.
SKIP_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
        "site-packages",
        "dist",
        "build",
    }
)


@dataclass(frozen=True, slots=True, order=True)
class CodeRef:
    """One occurrence of a flag key in a file (1-based line)."""

    path: str
    line: int
    key: str
    pattern: str


@dataclass(slots=True)
class CodeRefReport:
    """Outcome of comparing references with the flags the server knows."""

    refs: list[CodeRef]
    #: known flag keys that no scanned file references (dead configuration)
    unreferenced: list[str] = field(default_factory=list)
    #: key -> references, for keys the code reads but the server does not know (unmanaged)
    unknown: dict[str, list[CodeRef]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unreferenced and not self.unknown

    def as_dict(self) -> dict[str, object]:
        return {
            "references": len(self.refs),
            "unreferenced": list(self.unreferenced),
            "unknown": {
                key: [{"path": r.path, "line": r.line, "pattern": r.pattern} for r in refs]
                for key, refs in self.unknown.items()
            },
        }


def compile_patterns(patterns: Mapping[str, str] | Sequence[str]) -> dict[str, re.Pattern[str]]:
    """Compile configured patterns; a list gets names ``custom0``, ``custom1`` ...

    Raises ``ValueError`` naming the pattern when it lacks a ``key`` group, so a typo in
    settings fails loudly instead of finding nothing.
    """
    items = (
        patterns.items()
        if isinstance(patterns, Mapping)
        else ((f"custom{i}", p) for i, p in enumerate(patterns))
    )
    compiled: dict[str, re.Pattern[str]] = {}
    for name, pattern in items:
        regex = re.compile(pattern)
        if "key" not in regex.groupindex:
            raise ValueError(f"code-ref pattern {name!r} has no named group 'key': {pattern}")
        compiled[name] = regex
    return compiled


_NEWLINE = re.compile("\n")


def scan_text(text: str, path: str, patterns: Mapping[str, re.Pattern[str]]) -> Iterator[CodeRef]:
    """Yield every reference in ``text``; one match per pattern per position."""
    line_starts = [0]
    line_starts.extend(m.end() for m in _NEWLINE.finditer(text))
    seen: set[tuple[int, str]] = set()
    for name, regex in patterns.items():
        needles = _NEEDLES.get(regex.pattern)
        if needles is not None and not any(n in text for n in needles):
            continue
        for match in regex.finditer(text):
            start = match.start("key")
            line = _line_of(line_starts, start)
            key = match.group("key")
            if (start, key) in seen:
                continue
            seen.add((start, key))
            yield CodeRef(path=path, line=line, key=key, pattern=name)


def _line_of(line_starts: list[int], offset: int) -> int:
    lo, hi = 0, len(line_starts)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if line_starts[mid] <= offset:
            lo = mid
        else:
            hi = mid
    return lo + 1


def iter_source_files(
    paths: Iterable[str | os.PathLike[str]], extensions: Sequence[str] = DEFAULT_EXTENSIONS
) -> Iterator[Path]:
    """The files to scan under ``paths``: a file given explicitly whatever its extension,
    directories walked in sorted order (reports are stable) skipping ``SKIP_DIRS``.

    Shared by the flag-key scan here and the waffle scan (``flagapp.contrib.waffle.coderefs``)
    so both commands read the same files."""
    exts = tuple(e.lower() for e in extensions)
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"no such file or directory: {root}")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for filename in sorted(filenames):
                if filename.lower().endswith(exts):
                    yield Path(dirpath) / filename


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    patterns: Mapping[str, str] | Sequence[str] | None = None,
    extensions: Sequence[str] | None = None,
) -> list[CodeRef]:
    """Scan files and directories (recursively, skipping ``SKIP_DIRS``); sorted references.

    A file given explicitly is scanned whatever its extension. Undecodable bytes are
    replaced: a stray binary must not stop a CI run.
    """
    compiled = compile_patterns(DEFAULT_PATTERNS if patterns is None else patterns)
    refs: list[CodeRef] = []
    for file in iter_source_files(paths, DEFAULT_EXTENSIONS if extensions is None else extensions):
        text = file.read_text(encoding="utf-8", errors="replace")
        refs.extend(scan_text(text, str(file), compiled))
    return sorted(refs)


def compare(
    refs: Sequence[CodeRef], known_keys: Iterable[str], *, ignore: Iterable[str] = ()
) -> CodeRefReport:
    """Split references into unreferenced known keys and references to unknown keys.

    ``ignore`` lists keys exempt from both checks (flags read only by other repositories,
    or test fixtures that use made-up keys on purpose).
    """
    known = set(known_keys)
    skipped = set(ignore)
    referenced = {r.key for r in refs}
    unknown: dict[str, list[CodeRef]] = {}
    for ref in refs:
        if ref.key not in known and ref.key not in skipped:
            unknown.setdefault(ref.key, []).append(ref)
    return CodeRefReport(
        refs=list(refs),
        unreferenced=sorted(known - referenced - skipped),
        unknown=dict(sorted(unknown.items())),
    )
