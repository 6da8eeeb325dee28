"""Where the JSON Schema of ruleset format v1 lives (package data), and a loader for it.

The schema documents the format for other tools (editors, CI, other languages); the engine
itself validates with ruleset.py, which also checks what a schema cannot (references between
flags, segments and variants, cycles, regexes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

__all__ = ["SCHEMA_PATH", "load_schema"]

SCHEMA_PATH: Final = Path(__file__).with_name("ruleset.schema.json")


def load_schema() -> dict[str, Any]:
    """The schema as a dict (read from disk on each call; callers cache if they need to)."""
    result: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return result
