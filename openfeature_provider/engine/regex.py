"""``matches`` patterns: Python ``re`` syntax and meaning, run by RE2 in linear time.

Why: Python's ``re`` backtracks, so ``^(a+)+$`` on a few dozen characters takes seconds and
doubles per character (issue 11: 4 requests pinned both server workers). RE2 (google-re2)
matches in time linear in the input, whatever the pattern.

The contract (docs/ruleset-format.md): a pattern is written in Python ``re`` syntax and means
what Python's ``re.search`` means. It must compile with Python's ``re`` (so stored patterns
keep their meaning) and is then translated for RE2 where the two read the same text
differently, so the answer is Python's:

- ``\\d \\D \\w \\W \\s \\S`` are Unicode classes in Python, ASCII in RE2: translated to the
  Unicode property classes (``\\d`` -> ``\\p{Nd}``, ``\\w`` -> ``[\\p{L}\\p{N}_]`` ...). A class
  holding ``\\W`` or ``\\S`` becomes a union (``[a\\S]`` -> ``(?:[a]|[^...])``); inside a
  *negated* class they cannot be expressed: rejected.
- ``\\Z`` (Python: end of text) -> RE2's ``\\z``; ``\\uXXXX``, ``\\UXXXXXXXX``, ``\\N{NAME}`` ->
  ``\\x{...}``; ``x{,n}`` (Python: 0 to n) -> ``x{0,n}``; a ``[`` inside a class is a literal in
  Python, so it is escaped (RE2 would read ``[:alpha:]`` as a POSIX class).
- ``$`` outside multi-line mode also matches before a final newline in Python: translated to
  ``(?:\\n?\\z)`` (``matches`` only asks *whether* there is a match, so consuming that newline
  changes nothing; patterns using the ``m`` flag keep ``$``).

What RE2 cannot run in linear time is rejected at parse time with a ParseError naming the
value: lookahead/lookbehind, backreferences, possessive quantifiers, atomic groups,
conditionals, and anything else RE2 refuses (verbose mode, repeat counts over 1000 ...).
Remaining difference: ``\\b``/``\\B`` use ASCII word characters in RE2.

Matching: an attribute value longer than ``MAX_MATCH_INPUT_LENGTH`` characters, or one with
no UTF-8 form (a lone surrogate), is unusable (the condition is false, also when negated).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any, Final

import re2

from .exceptions import RegexProblem
from .limits import MAX_MATCH_INPUT_LENGTH

__all__ = ["MAX_MATCH_INPUT_LENGTH", "RegexProblem", "compile_search", "to_re2"]

_W = r"\p{L}\p{N}_"
_S = (
    r"\t\n\x0b\f\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
#: Python escape -> RE2 text, outside and inside a character class (None: not expressible).
_CLASSES: Final[dict[str, tuple[str, str | None]]] = {
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "w": (f"[{_W}]", _W),
    "W": (f"[^{_W}]", None),
    "s": (f"[{_S}]", _S),
    "S": (f"[^{_S}]", None),
}
_MULTILINE_FLAG = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)-]")
_EMPTY_MIN_REPEAT = re.compile(r"\{,(\d*)\}")


def to_re2(pattern: str) -> str:
    """Translate a (Python-valid) pattern into RE2 syntax with the same meaning.

    Raises ``RegexProblem`` for Python constructs RE2 cannot express.
    """
    keep_dollar = bool(_MULTILINE_FLAG.search(pattern))
    out: list[str] = []
    i, n = 0, len(pattern)
    # The character class being read: its items, whether it is negated, and the negated
    # Unicode classes (\W, \S) it holds, which RE2 cannot nest inside a class.
    cls: list[str] | None = None
    cls_negated = False
    cls_outside: list[str] = []
    while i < n:
        c = pattern[i]
        target = out if cls is None else cls
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            i += 2
            if e in _CLASSES:
                outside, inside = _CLASSES[e]
                if cls is None:
                    out.append(outside)
                elif inside is not None:
                    cls.append(inside)
                else:
                    cls_outside.append(outside)
            elif e == "Z" and cls is None:
                out.append(r"\z")
            elif e == "b" and cls is not None:
                cls.append(r"\x08")  # backspace inside a class, as in Python
            elif e in "uU":
                width = 4 if e == "u" else 8
                target.append(f"\\x{{{pattern[i : i + width]}}}")
                i += width
            elif e == "N" and pattern.startswith("{", i):
                end = pattern.index("}", i)
                target.append(f"\\x{{{ord(unicodedata.lookup(pattern[i + 1 : end])):x}}}")
                i = end + 1
            else:
                target.append(c + e)
            continue
        i += 1
        if cls is not None:
            if c == "]":
                out.append(_close_class(cls, cls_negated, cls_outside))
                cls = None
            elif c == "[":
                cls.append(r"\[")  # a literal in Python; RE2 would see [:alpha:]
            else:
                cls.append(c)
            continue
        if c == "[":
            cls, cls_outside = [], []
            cls_negated = pattern.startswith("^", i)
            if cls_negated:
                i += 1
            if pattern.startswith("]", i):  # "]" first in a class is a literal
                cls.append(r"\]")
                i += 1
            continue
        if c == "{" and out:
            m = _EMPTY_MIN_REPEAT.match(pattern, i - 1)
            if m is not None:
                out.append(f"{{0,{m.group(1)}}}")
                i = m.end()
                continue
        if c == "$" and not keep_dollar:
            out.append(r"(?:\n?\z)")
            continue
        out.append(c)
    return "".join(out)


def _close_class(items: list[str], negated: bool, outside: list[str]) -> str:
    """``[items]``; with \\W or \\S inside (``outside`` holds their negated-class forms),
    the union ``(?:[items]|[^...])`` — e.g. ``[\\s\\S]`` — which RE2 can run. A negated
    class cannot be rewritten that way (it would need an intersection)."""
    body = "".join(items)
    if not outside:
        return f"[{'^' if negated else ''}{body}]"
    if negated:
        raise RegexProblem(
            "\\W or \\S inside a negated character class has no RE2 equivalent with "
            "Python's Unicode meaning"
        )
    return "(?:" + "|".join(([f"[{body}]"] if body else []) + outside) + ")"


_UNSUPPORTED: Final = (
    # (marker in RE2's error message, what to tell the author)
    ("(?=", "lookaround (lookahead) is not supported"),
    ("(?!", "lookaround (negative lookahead) is not supported"),
    ("(?<=", "lookaround (lookbehind) is not supported"),
    ("(?<!", "lookaround (negative lookbehind) is not supported"),
    ("(?P=", "backreferences are not supported"),
    ("(?>", "atomic groups are not supported"),
    ("(?(", "conditional groups are not supported"),
)


def _explain(pattern: str, error: str) -> str:
    for marker, text in _UNSUPPORTED:
        if error.endswith(marker) or (marker == "(?P=" and marker in pattern):
            return text
    if error.startswith("invalid escape sequence: \\") and error[-1:].isdigit():
        return "backreferences are not supported"
    if error.startswith("bad repetition operator") and error.endswith("+"):
        return "possessive quantifiers are not supported"
    return f"not supported by RE2: {error}"


def _options(case_insensitive: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # errors become ParseErrors; RE2 must not write to stderr
    options.never_capture = True  # only "is there a match" is asked
    options.case_sensitive = not case_insensitive
    return options


def compile_search(source: str, case_insensitive: bool) -> Callable[[str], bool | None]:
    """A test ``text -> matched`` for one pattern, ``None`` when ``text`` is unusable (longer
    than ``MAX_MATCH_INPUT_LENGTH`` or without a UTF-8 form). Raises ``RegexProblem``."""
    try:
        re.compile(source, re.IGNORECASE if case_insensitive else 0)
    except re.error as exc:
        raise RegexProblem(f"regex does not compile: {exc}") from None
    try:
        encoded = to_re2(source).encode("utf-8")
    except UnicodeEncodeError:
        raise RegexProblem("regex is not valid Unicode text (a lone surrogate)") from None
    except (ValueError, KeyError) as exc:  # \N{unknown name} (Python compiled it, though)
        raise RegexProblem(f"regex does not compile: {exc}") from None
    prog = re2._re2.RE2(encoded, _options(case_insensitive))
    if not prog.ok():
        error = prog.error()
        if isinstance(error, bytes):
            error = error.decode("utf-8", "replace")
        raise RegexProblem(
            f"{_explain(source, error)} (matches uses RE2, which runs in linear time)"
        )
    match = prog.Match
    unanchored = re2._re2.RE2.Anchor.UNANCHORED
    no_match = (-1, -1)
    limit = MAX_MATCH_INPUT_LENGTH

    def search(text: str) -> bool | None:
        if len(text) > limit:
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return bool(match(unanchored, data, 0, len(data))[0] != no_match)

    return search
