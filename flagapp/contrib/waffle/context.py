"""The request attributes waffle reads that flagapp's default context does not carry.

flagapp's default context (:func:`flagapp.context.default_context`) already has what
waffle's user checks need: ``targetingKey`` (the user's pk), ``authenticated``,
``is_staff``, ``is_superuser`` and ``groups`` (group names, filled when a ruleset targets
groups). Imported waffle flags also read:

``language``
    ``request.LANGUAGE_CODE`` (set by ``django.middleware.locale.LocaleMiddleware``), for
    waffle's *languages* field.
``waffle_testing:<name>``
    waffle's *testing* mode: ``True``/``False`` from ``?dwft_<name>=1|0``, else the
    ``DWFT-<name>`` header, else the ``dwft_<name>`` cookie (waffle's precedence), with
    ``<name>`` in :func:`~flagapp.contrib.waffle.keys.norm_test_name` form. The cookie
    name follows ``settings.WAFFLE_TEST_COOKIE`` (default ``dwft_%s``).

Use the whole builder::

    FLAGAPP = {"CONTEXT_BUILDER": "flagapp.contrib.waffle.context.waffle_context"}

or, with a builder of your own, add :func:`waffle_attributes` to what it returns.
"""

from __future__ import annotations

import contextlib
import re
from functools import lru_cache
from typing import Any

from flagapp.context import default_context

from .keys import norm_test_name

__all__ = ["TESTING_ATTR_PREFIX", "testing_attr", "waffle_attributes", "waffle_context"]

#: Context attributes of testing mode are ``TESTING_ATTR_PREFIX + norm_test_name(name)``.
TESTING_ATTR_PREFIX = "waffle_testing:"

#: Where the builder notes the testing values that came from the query string or a header
#: (``{norm name: (name as sent, value)}``): the compatibility layer turns those into
#: ``request.waffle_tests`` for the test cookie, as waffle does.
PERSIST_ATTR = "_flagapp_waffle_tests"


def testing_attr(flag_name: str) -> str:
    return TESTING_ATTR_PREFIX + norm_test_name(flag_name)


def _test_cookie_format() -> str:
    from django.conf import settings

    return str(getattr(settings, "WAFFLE_TEST_COOKIE", "dwft_%s"))


@lru_cache(maxsize=8)
def _patterns(fmt: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    before, _, after = fmt.partition("%s")
    exact = re.compile(re.escape(before) + "(.+)" + re.escape(after), re.DOTALL)
    header_fmt = fmt.replace("_", "-")
    hb, _, ha = header_fmt.partition("%s")
    header = re.compile(re.escape(hb) + "(.+)" + re.escape(ha), re.DOTALL | re.IGNORECASE)
    return exact, header


def waffle_attributes(request: Any) -> dict[str, Any]:
    """``language`` and the testing-mode attributes of ``request`` (see the module doc)."""
    attrs: dict[str, Any] = {}
    language = getattr(request, "LANGUAGE_CODE", None)
    if isinstance(language, str):
        attrs["language"] = language
    exact, header = _patterns(_test_cookie_format())
    found: dict[str, bool] = {}
    persist: dict[str, tuple[str, bool]] = {}
    cookies = getattr(request, "COOKIES", None) or {}
    for name, value in cookies.items():
        m = exact.fullmatch(name)
        if m:
            found[norm_test_name(m.group(1))] = value == "True"
    headers = getattr(request, "headers", None) or {}
    for name in headers:
        m = header.fullmatch(name)
        if m:
            norm = norm_test_name(m.group(1))
            value = headers[name] == "1"
            found[norm] = value
            persist[norm] = (m.group(1), value)
    query = getattr(request, "GET", None) or {}
    for name in query:
        m = exact.fullmatch(name)
        if m:
            norm = norm_test_name(m.group(1))
            value = query[name] == "1"
            found[norm] = value
            persist[norm] = (m.group(1), value)
    for norm, value in found.items():
        attrs[TESTING_ATTR_PREFIX + norm] = value
    if persist:
        with contextlib.suppress(AttributeError):
            setattr(request, PERSIST_ATTR, persist)
    return attrs


def waffle_context(request: Any) -> dict[str, Any]:
    """flagapp's default context plus :func:`waffle_attributes`: set it as
    ``FLAGAPP["CONTEXT_BUILDER"]`` when imported waffle flags use languages or testing."""
    ctx = dict(default_context(request))
    ctx.update(waffle_attributes(request))
    return ctx
