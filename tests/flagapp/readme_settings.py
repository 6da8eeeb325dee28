"""tests.settings without ``REST_FRAMEWORK``: a host project configured as the README says
(flagapp does not ask for a ``DEFAULT_SCHEMA_CLASS``)."""

from tests.settings import *  # noqa: F403

REST_FRAMEWORK: dict[str, object] = {}
