"""Errors the engine raises. Evaluation itself never raises: it returns a Resolution.

Hierarchy::

    EngineError
    ├── ParseError            a ruleset document is invalid; ``path`` names the JSON location
    └── UnusableBucketValue   (also a ValueError) a bucket value has no UTF-8 form; raised by
                              the reference functions in bucketing.py only — compiled
                              rollouts answer INVALID_CONTEXT instead
"""

from __future__ import annotations

__all__ = ["EngineError", "ParseError", "UnusableBucketValue"]


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


class UnusableBucketValue(EngineError, ValueError):
    """A bucket value cannot be hashed: it has no UTF-8 form (a lone surrogate)."""
