"""The project before the migration: django-waffle in INSTALLED_APPS."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "shop"]
MIDDLEWARE = [*MIDDLEWARE, "waffle.middleware.WaffleMiddleware"]
ROOT_URLCONF = "shop.urls"

if os.environ.get("SHOP_DB"):  # the data migration run: one SQLite file for both phases
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SHOP_DB"]}}
