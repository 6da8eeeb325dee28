#!/usr/bin/env python
"""The example project's manage.py (``make demo`` runs ``flagapp_demo --reset`` then
``runserver`` here). The repository root goes on ``sys.path`` so ``example_project`` and
``flagapp`` import from this checkout."""

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    # Replace this directory on sys.path with the repository root, so ``example_project``
    # and this checkout's ``flagapp`` import (and no module here can shadow a package).
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
