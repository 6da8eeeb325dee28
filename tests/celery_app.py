"""The Celery app of the test suite, configured from ``tests.settings`` (``CELERY_*``).

In-process tests import it so ``@shared_task``s bind to an app that runs them eagerly
(``CELERY_TASK_ALWAYS_EAGER``). The real-worker tests start
``celery -A tests.celery_app worker`` with ``FLAGAPP_CELERY_BROKER=redis://...``: then the
broker and result back-end are that Redis and nothing runs eagerly.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("flagapp_tests", include=["flagapp.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")

_broker = os.environ.get("FLAGAPP_CELERY_BROKER")
if _broker:
    app.conf.update(
        broker_url=_broker,
        result_backend=_broker,
        task_always_eager=False,
        task_eager_propagates=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

app.set_default()
