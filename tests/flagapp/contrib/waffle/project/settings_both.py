"""A mistake: both django-waffle and the compatibility app."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "flagapp.contrib.waffle"]
