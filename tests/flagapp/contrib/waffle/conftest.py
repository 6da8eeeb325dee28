"""The compatibility layer runs here without its app installed (this process has the real
django-waffle for the equivalence tests), so nothing calls ``WaffleCompatConfig.ready()``:
this fixture connects what ``ready()`` connects, the ``WAFFLE_*`` settings-cache receiver."""

from __future__ import annotations

import pytest

from flagapp.contrib import waffle as compat


@pytest.fixture(autouse=True)
def _compat_ready() -> None:
    compat._connect()  # idempotent (dispatch_uid)
