"""The example project. Importing it loads its Celery app, so ``@shared_task``s bind to it
(the usual Celery-with-Django layout)."""

from .celery_app import app as celery_app

__all__ = ["celery_app"]
