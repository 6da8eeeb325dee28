"""Kept so ``from openfeature_provider.engine.errors import ParseError`` keeps working; the
exception classes live in exceptions.py (the hierarchy is in its docstring)."""

from __future__ import annotations

from .exceptions import EngineError, ParseError, UnusableBucketValue

__all__ = ["EngineError", "ParseError", "UnusableBucketValue"]
