"""The browser tests' shared fixture (``browser``) comes from :mod:`tests.browser.support`."""

from .support import browser  # noqa: F401 - the fixture
