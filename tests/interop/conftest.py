"""The flagd-testbed's gherkin tags become pytest markers (the suite runs --strict-markers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_TAG = re.compile(r"(?<!\S)@([\w.-]+)")


def pytest_configure(config: pytest.Config) -> None:
    tags: set[str] = set()
    for feature in Path(__file__).with_name("flagd_testbed").glob("*.feature"):
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("@"):
                tags.update(_TAG.findall(line))
    for tag in sorted(tags):
        config.addinivalue_line("markers", f"{tag}: flagd-testbed gherkin tag")
