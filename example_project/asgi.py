"""The example project's ASGI entry point, for uvicorn (docs/deploy.md)::

    uvicorn example_project.asgi:application          # from the repository root
    cd example_project && uvicorn asgi:application    # or from inside this directory

Why the ``sys.path`` step: started from inside this directory, uvicorn puts the directory
itself on ``sys.path`` but not the repository root, so ``example_project`` (and a checkout's
``flagapp``) would not import. Nothing in this directory may be named like an installed
package (the Celery app lives in ``celery_app.py``, not ``celery.py``, which shadowed the
``celery`` package and crashed uvicorn started from here).

The SDK and OFREP paths skip the middleware (``flagapp.asgi.sdk_fast_path``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

from flagapp.asgi import sdk_fast_path  # noqa: E402

application = sdk_fast_path(get_asgi_application())
