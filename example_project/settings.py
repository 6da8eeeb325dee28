"""Settings of the example project: SQLite file, DEBUG, every flagapp piece switched on.

Environment variables (all optional): ``FLAGAPP_ENVIRONMENT`` (the environment this site
evaluates, default ``production``), ``DATABASE_PATH``, ``CELERY_BROKER_URL`` (unset: tasks
run eagerly in-process), ``REDIS_URL`` (a shared cache and cross-process notifications),
``FLAGAPP_METRICS_TOKEN`` (a bearer token for ``/metrics``; without it only loopback may
scrape, docs/observability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "flagapp-example-not-a-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"

# SQLite: BEGIN IMMEDIATE takes the write lock when a transaction starts, so concurrent
# writers queue for it (up to "timeout" seconds) and the version check then answers 409;
# with the default deferred transactions a reader upgrading to a writer fails at once with
# "database is locked" (a 500). Needs Django >= 5.1.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DATABASE_PATH", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "simple_history",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # /api/docs/ serves Swagger UI from local static files
    "flagapp",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "flagapp.middleware.FlagMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],  # admin/base_site.html: flagapp's accessibility fixes
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

STATIC_URL = "/static/"
LOGIN_URL = "/admin/login/"

_redis = os.environ.get("REDIS_URL")
if _redis:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "flagapp-example",
        }
    }

# Celery: eager (in-process) unless a broker is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = "CELERY_BROKER_URL" not in os.environ
CELERY_TASK_EAGER_PROPAGATES = True

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {"TITLE": "flagapp management API", "VERSION": "1.0.0"}

FLAGAPP = {
    "ENVIRONMENT": os.environ.get("FLAGAPP_ENVIRONMENT", "production"),
    # runserver is one process; with REDIS_URL the cache is shared and this can go.
    "SINGLE_PROCESS": not _redis,
    "NOTIFIER": "redis" if _redis else "local",
    "REDIS_URL": _redis or "redis://127.0.0.1:6379/0",
    "METRICS_TOKEN": os.environ.get("FLAGAPP_METRICS_TOKEN") or None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"flagapp": {"handlers": ["console"], "level": "INFO"}},
}
