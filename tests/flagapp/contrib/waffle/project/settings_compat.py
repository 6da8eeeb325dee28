"""The project after the migration: flagapp.contrib.waffle in place of waffle; nothing else
changes (same MIDDLEWARE entry, same call sites, same tests)."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import FLAGAPP, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [
    "flagapp.contrib.waffle" if app == "waffle" else app for app in INSTALLED_APPS
] + ["shop"]
MIDDLEWARE = [*MIDDLEWARE, "waffle.middleware.WaffleMiddleware"]
ROOT_URLCONF = "shop.urls"

if os.environ.get("SHOP_DB"):  # the data migration run: one SQLite file for both phases
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SHOP_DB"]}}
FLAGAPP = {**FLAGAPP, "CONTEXT_BUILDER": "flagapp.contrib.waffle.context.waffle_context"}
