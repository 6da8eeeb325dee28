"""django-waffle's API, answered by flagapp: the compatibility layer.

Add ``"flagapp.contrib.waffle"`` to INSTALLED_APPS *in place of* ``"waffle"`` (after
running ``manage.py flagapp_import_waffle``). The app then makes ``import waffle`` resolve
to this package, so existing call sites keep working unchanged:

==========================================  ==============================================
waffle                                      here
==========================================  ==============================================
``waffle.flag_is_active(request, name)``    flag ``waffle.<name>`` (see :mod:`.keys`)
``waffle.switch_is_active(name)``           flag ``waffle-switch.<name>``
``waffle.sample_is_active(name)``           flag ``waffle-sample.<name>`` (a percentage)
``waffle.decorators``                       ``waffle_flag``, ``waffle_switch``
``waffle.mixins``                           ``WaffleFlagMixin``, ``WaffleSwitchMixin``,
                                            ``WaffleSampleMixin``
``waffle.testutils``                        ``override_flag``, ``override_switch``,
                                            ``override_sample``
``{% load waffle_tags %}``                  ``{% flag %}``, ``{% switch %}``, ``{% sample %}``
``waffle.middleware.WaffleMiddleware``      writes the testing-mode cookie
==========================================  ==============================================

A name unknown to flagapp answers ``WAFFLE_FLAG_DEFAULT`` / ``WAFFLE_SWITCH_DEFAULT`` /
``WAFFLE_SAMPLE_DEFAULT`` (``False`` unless set), as waffle answers for a missing object;
a *disabled* flagapp flag answers ``False``. ``WAFFLE_OVERRIDE`` (``?name=1``) is honoured.
Not provided: waffle's models, admin, management commands, ``waffle.views``/``waffle.urls``
(wafflejs) and ``{% wafflejs %}``; see docs/migrating-from-waffle.md.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from .keys import flag_key, sample_key, switch_key

__all__ = [
    "flag_is_active",
    "get_waffle_flag_model",
    "get_waffle_sample_model",
    "get_waffle_switch_model",
    "sample_is_active",
    "switch_is_active",
]

#: The django-waffle release whose API this layer reproduces.
__version__ = "5.0.0"

_DEFAULTS = {
    "FLAG_DEFAULT": False,
    "SWITCH_DEFAULT": False,
    "SAMPLE_DEFAULT": False,
    "OVERRIDE": False,
}
_cache: dict[str, Any] = {}


def _setting(name: str) -> Any:
    """``settings.WAFFLE_<name>``, cached until a ``setting_changed`` (a missing setting
    costs an exception per read otherwise, on every flag check)."""
    try:
        return _cache[name]
    except KeyError:
        pass
    from django.conf import settings

    value = getattr(settings, "WAFFLE_" + name, _DEFAULTS.get(name))
    _cache[name] = value
    return value


def _on_setting_changed(*, setting: str = "", **kwargs: Any) -> None:
    if setting.startswith("WAFFLE_"):
        _cache.clear()


def _connect() -> None:
    """Forget the cached ``WAFFLE_*`` settings when a test changes one: connected by
    ``WaffleCompatConfig.ready()`` (no receiver is connected at import time)."""
    from django.test.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.contrib.waffle.settings")


def _not_found(details: Any) -> bool:
    from openfeature_provider.engine import ErrorCode

    return bool(details.error_code == ErrorCode.FLAG_NOT_FOUND)


def flag_is_active(request: Any, flag_name: str, read_only: bool = False) -> bool:
    """waffle's ``flag_is_active``: flag ``waffle.<flag_name>`` for this request.

    ``read_only`` is accepted and ignored (flagapp sets no cookie for percentages).
    """
    from flagapp import evaluate

    if request is not None and _setting("OVERRIDE"):
        query = getattr(request, "GET", None)
        if query is not None and flag_name in query:
            return bool(query[flag_name] == "1")
    key = flag_key(flag_name)
    details = evaluate(key, False, request, kind="boolean")
    if _not_found(details):
        return bool(_setting("FLAG_DEFAULT"))
    active = details.value is True
    if request is not None:
        _note_test_cookie(request, flag_name, key, active)
    return active


def _note_test_cookie(request: Any, flag_name: str, key: str, active: bool) -> None:
    """Testing mode decided by ``?dwft_<name>`` or the header: remember it in
    ``request.waffle_tests`` so the middleware sets the cookie, as waffle does."""
    from .context import PERSIST_ATTR
    from .keys import norm_test_name

    persist = getattr(request, PERSIST_ATTR, None)
    if not persist:
        return
    sent = persist.get(norm_test_name(flag_name))
    if sent is None or sent[1] is not active:
        return
    from flagapp.context import CONTEXT_ATTR
    from flagapp.evaluation import current_ruleset
    from openfeature_provider.engine import evaluate as engine_evaluate

    ruleset = current_ruleset()
    ctx = getattr(request, CONTEXT_ATTR, None)
    if ruleset is None or ctx is None:
        return
    res = engine_evaluate(ruleset, key, ctx, "boolean")
    if res.rule_id in ("waffle-testing-on", "waffle-testing-off"):
        tests = getattr(request, "waffle_tests", None)
        if tests is None:
            tests = {}
            request.waffle_tests = tests
        tests[flag_name] = active


def switch_is_active(switch_name: str) -> bool:
    """waffle's ``switch_is_active``: flag ``waffle-switch.<switch_name>`` (no request)."""
    from flagapp import evaluate

    details = evaluate(switch_key(switch_name), False, None, kind="boolean")
    if _not_found(details):
        return bool(_setting("SWITCH_DEFAULT"))
    return details.value is True


def sample_is_active(sample_name: str) -> bool:
    """waffle's ``sample_is_active``: true for the flag's percentage of calls, at random."""
    from flagapp import evaluate

    details = evaluate(sample_key(sample_name), None, None, kind="float")
    if _not_found(details):
        return bool(_setting("SAMPLE_DEFAULT"))
    percent = details.value
    if percent is None or isinstance(percent, bool) or not isinstance(percent, int | float):
        return False  # disabled (or not a percentage): never active
    return Decimal(str(random.uniform(0, 100))) <= Decimal(str(percent))


def _no_models(*args: Any, **kwargs: Any) -> Any:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "flagapp.contrib.waffle has no waffle models: flags live in flagapp now "
        "(flagapp.models.Flag, keys waffle.<name>); see docs/migrating-from-waffle.md"
    )


get_waffle_flag_model = _no_models
get_waffle_switch_model = _no_models
get_waffle_sample_model = _no_models
