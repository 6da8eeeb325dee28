"""Run every benchmark module (``bench_*.py``) in name order and print their tables.

``python -m benchmarks`` runs all; ``python -m benchmarks engine provider`` runs the modules
whose names contain one of the words. A module that needs Django is skipped with a note when
Django is not installed (the provider-only install).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(word in n for word in argv)]
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"\n{name}: skipped ({exc})")
            continue
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
