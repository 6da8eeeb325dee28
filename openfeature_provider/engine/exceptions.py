"""Every exception class of the engine, in one module. Evaluation itself never raises: it
returns a Resolution (an error code and the caller's default).

Hierarchy::

    Exception
    ├── EngineError                 base of what the engine raises to its callers
    │   ├── ParseError              a ruleset document is invalid; ``path`` names the JSON
    │   │   │                       location, ``message`` says why (parse_ruleset)
    │   │   └── DeltaMismatch       a delta does not apply to the ruleset held (another base,
    │   │                           or the result's counts differ): fetch the full document
    │   └── UnusableBucketValue     (also a ValueError) a bucket value has no UTF-8 form; raised
    │                               by the reference functions in bucketing.py only — compiled
    │                               rollouts answer INVALID_CONTEXT instead
    └── ValueError
        ├── ValueProblem            internal: a condition's ``values`` are invalid (operators.py);
        │                           the parser turns it into a ParseError with the path
        └── RegexProblem            internal: a ``matches`` pattern is invalid or needs
                                    backtracking (regex.py); becomes a ValueProblem

``ParseError`` and ``EngineError`` are also importable from ``openfeature_provider.engine``
and, as before, from ``openfeature_provider.engine.errors``.
"""

from __future__ import annotations

__all__ = [
    "DeltaMismatch",
    "EngineError",
    "ParseError",
    "RegexProblem",
    "UnusableBucketValue",
    "ValueProblem",
]


class EngineError(Exception):
    """Base of every engine error."""


class ParseError(EngineError):
    """A ruleset document is invalid. The whole document is rejected.

    ``path`` is a JSON path such as ``$.flags["checkout.new-flow"].rules[0].when[1].op`` so
    the author (a person, the Django compiler, or CI running flagapp-eval) can find it.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class DeltaMismatch(ParseError):
    """The delta does not apply to the document held (another base, or the counts of the
    result differ): fetch the full document instead (``engine.delta.parse_delta``)."""


class UnusableBucketValue(EngineError, ValueError):
    """A bucket value cannot be hashed: it has no UTF-8 form (a lone surrogate)."""


class ValueProblem(ValueError):
    """A condition's ``values`` are invalid; ``index`` points into the list (None: the list)."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


class RegexProblem(ValueError):
    """A pattern is invalid or cannot run in linear time; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
