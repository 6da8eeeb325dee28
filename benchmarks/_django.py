"""In-process Django settings shared by the Django benchmark modules."""

from __future__ import annotations

from typing import Any


def configure_django() -> None:
    """Configure Django in-process (SQLite in memory, locmem cache) once per benchmark run.

    Every Django benchmark shares it because settings can be configured only once per
    process and `python -m benchmarks` runs them all in one.
    """
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-a-secret",
        USE_TZ=True,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "bench",
            }
        },
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.admin",
            "django.contrib.messages",
            "simple_history",
            "rest_framework",
            "django_filters",
            "drf_spectacular",
            "waffle",
            "flagapp",
        ],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        ROOT_URLCONF="benchmarks._django",
        FLAGAPP={
            "ENVIRONMENT": "production",
            "SINGLE_PROCESS": True,
            "CONTEXT_BUILDER": "benchmarks.bench_django.bench_context",
        },
        LOGGING_CONFIG=None,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    django.setup()


urlpatterns: list[Any] = []
