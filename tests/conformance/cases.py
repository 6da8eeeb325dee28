"""Load the shared conformance cases (``cases/*.json``).

Pure (standard library only, no pytest, no engine import) so every runner can reuse it: the
engine runner here, the provider's (through the OpenFeature SDK) and the Django app's
(through the ORM -> snapshot -> flagapp.evaluate path). Each file is one edge case::

    {"description": "...", "ruleset": {format-v1 document},
     "cases": [{"flag", "kind", "context", "default",
                "expected": {"value", "variant", "reason", "errorCode"}}]}

``expected.value`` is what the *caller* gets: the case's ``default`` whenever the engine says
"serve the default". ``reason`` is the engine's reason (``PREREQUISITE_FAILED`` is carried as
DISABLED over OFREP; a runner for that surface maps it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CASES_DIR", "load_cases", "load_files"]

CASES_DIR = Path(__file__).with_name("cases")


def load_files(directory: Path = CASES_DIR) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file stem, whole document)`` for every case file, in name order."""
    for path in sorted(directory.glob("*.json")):
        yield path.stem, json.loads(path.read_text(encoding="utf-8"))


def load_cases(directory: Path = CASES_DIR) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(name, ruleset_doc, case)`` for every case; ``name`` is ``<file>#<index>:<flag>``.

    Use ``name`` as a pytest id. The ruleset document is shared by the cases of one file:
    do not mutate it.
    """
    for stem, doc in load_files(directory):
        for i, case in enumerate(doc["cases"]):
            yield f"{stem}#{i}:{case['flag']}", doc["ruleset"], case
