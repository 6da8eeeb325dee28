"""The project before the migration: django-waffle in INSTALLED_APPS."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "shop"]
MIDDLEWARE = [*MIDDLEWARE, "waffle.middleware.WaffleMiddleware"]
ROOT_URLCONF = "shop.urls"
