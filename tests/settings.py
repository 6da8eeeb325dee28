"""Django settings for the test suite (and a reference for a minimal project).

SQLite in memory by default, so ``pytest`` needs no server; ``FLAGAPP_TEST_DB=postgres`` runs
the same suite on the PostgreSQL at 127.0.0.1:5432 (database ``test``, user ``postgres``).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "flagapp-tests-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

if os.environ.get("FLAGAPP_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("FLAGAPP_TEST_PG_NAME", "test"),
            "USER": os.environ.get("FLAGAPP_TEST_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("FLAGAPP_TEST_PG_PASSWORD", ""),
            "HOST": os.environ.get("FLAGAPP_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FLAGAPP_TEST_PG_PORT", "5432"),
            "TEST": {"NAME": os.environ.get("FLAGAPP_TEST_PG_TEST_NAME", "test_flagapp")},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            # As the example project: writers queue for the write lock (409 on a stale
            # version, never "database is locked") when a test points NAME at a file.
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
    "drf_spectacular_sidecar",  # Swagger UI for /api/docs/ from local static files (no CDN)
    "flagapp",
    # The real django-waffle, for the waffle import and equivalence tests
    # (tests/flagapp/contrib/waffle/); flagapp itself never imports it.
    "waffle",
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
]

ROOT_URLCONF = "tests.urls"

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

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "flagapp-tests",
    }
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Celery runs tasks inline in tests; the real-worker tests (marker celery_worker) override it.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "flagapp management API",
    "VERSION": "1.0.0",
}

FLAGAPP = {
    "ENVIRONMENT": "production",
    # The test run is one process: a LocMem cache is right here (silences flagapp.W001).
    "SINGLE_PROCESS": True,
}
# The real-worker webhook test shortens its worker's retry backoff (seconds).
if os.environ.get("FLAGAPP_TEST_WEBHOOK_BACKOFF"):
    FLAGAPP["WEBHOOK_BACKOFF_SECONDS"] = float(os.environ["FLAGAPP_TEST_WEBHOOK_BACKOFF"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"flagapp": {"handlers": ["null"], "level": "INFO"}},
}
