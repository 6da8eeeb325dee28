"""Spec tags become pytest markers; the scenarios in ``DECISIONS`` are skipped with their reason.

The suite runs with ``--strict-markers``: the feature files' tags (``@spec-1.4.7``,
``@booleans`` ...) are registered here from the files themselves, so ``-m booleans`` selects
spec scenarios and a typo in our own markers still fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from .decisions import DECISIONS

_TAG = re.compile(r"(?<!\S)@([\w.-]+)")


def pytest_configure(config: pytest.Config) -> None:
    tags: set[str] = set()
    for feature in Path(__file__).parent.glob("*.feature"):
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("@"):
                tags.update(_TAG.findall(line))
    for tag in sorted(tags):
        config.addinivalue_line("markers", f"{tag}: OpenFeature spec gherkin tag")


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    if tag in DECISIONS:
        pytest.mark.skip(reason=f"decided: {DECISIONS[tag]}")(function)
        return True
    return None  # pytest-bdd's default: the tag becomes a marker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))
        name = getattr(template, "name", None)
        if name in DECISIONS:
            item.add_marker(pytest.mark.skip(reason=f"decided: {DECISIONS[name]}"))
