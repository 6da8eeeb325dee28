"""Run pytest and treat "no tests collected" (exit code 5) as a failure with a clear message.

CI must never go green on a run that tested nothing: a selection that collects nothing is
a broken selection.
"""

from __future__ import annotations

import sys

import pytest


def main(argv: list[str]) -> int:
    code = int(pytest.main(argv))
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"pytest collected no tests for {argv!r}: failing", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
