"""``waffle.middleware.WaffleMiddleware``: sets the testing-mode cookie.

django-waffle's middleware writes two kinds of cookies: ``dwf_<name>`` remembering a
browser's random percentage draw, and ``dwft_<name>`` remembering a testing-mode choice
made with ``?dwft_<name>=1|0``. flagapp's percentages are sticky without a cookie, so only
the second is written, from ``request.waffle_tests`` (filled by
:func:`flagapp.contrib.waffle.flag_is_active`). Keep it in MIDDLEWARE if you use testing
mode; otherwise it may go.
"""

from __future__ import annotations

from typing import Any

from django.utils.deprecation import MiddlewareMixin
from django.utils.encoding import smart_str

__all__ = ["WaffleMiddleware"]


class WaffleMiddleware(MiddlewareMixin):
    def process_response(self, request: Any, response: Any) -> Any:
        from django.conf import settings

        tests = getattr(request, "waffle_tests", None)
        if tests:
            fmt = str(getattr(settings, "WAFFLE_TEST_COOKIE", "dwft_%s"))
            for name, value in tests.items():
                response.set_cookie(smart_str(fmt % name), value=value)
        return response
