"""An ASGI entry point for serving a flagapp project, stream included, with uvicorn.

The SSE stream (``/sdk/v1/stream``) holds a connection open per SDK; under ASGI that costs a
coroutine, under WSGI a worker thread. So flagapp's production shape is ASGI::

    DJANGO_SETTINGS_MODULE=mysite.settings \\
        uvicorn flagapp.asgi:application --workers 4 --http httptools --loop uvloop \\
        --no-access-log --lifespan off

A project that already has its own ``asgi.py`` (``get_asgi_application()``) needs nothing from
here; this module only saves writing one. Importing it configures Django (like any project's
asgi.py), so import it only as the server's entry point.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

application = get_asgi_application()
