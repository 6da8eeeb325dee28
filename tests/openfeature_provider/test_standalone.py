"""The provider runs without Django, and the engine without the provider's dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_provider__django_and_flagapp_unimportable__evaluates_through_sdk() -> None:
    result = _run(
        """
        import sys
        sys.modules["django"] = None   # any "import django" now raises ImportError
        sys.modules["flagapp"] = None
        from openfeature import api
        from openfeature.evaluation_context import EvaluationContext
        from openfeature_provider import FlagappProvider, InMemorySource
        from openfeature_provider.testing import static_ruleset
        source = InMemorySource(static_ruleset({"a": True}))
        api.set_provider_and_wait(FlagappProvider(source=source))
        print(api.get_client().get_boolean_value("a", False, EvaluationContext("u")))
        api.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_engine_import__pulls_in_neither_openfeature_nor_httpx() -> None:
    result = _run(
        """
        import sys
        import openfeature_provider.engine
        print(sorted(m for m in ("openfeature", "httpx", "django") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
