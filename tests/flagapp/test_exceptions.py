"""flagapp/exceptions.py is the one home of flagapp's exceptions (issue 12): every public
exception class defined in another flagapp module is listed here, with the reason the
flagapp.exceptions docstring gives, so a new one cannot appear elsewhere unnoticed. Private
classes (a leading underscore: rollback signals inside one module) are not counted."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import flagapp
from flagapp import exceptions

#: Defined outside flagapp.exceptions on purpose (the module docstring of flagapp.exceptions
#: says why): the REST API's DRF exception and the SDK endpoints' internal errors.
ALLOWED = frozenset(
    {
        "flagapp.api.preconditions.PreconditionRequired",
        "flagapp.sdk.keys.AuthFailure",
        "flagapp.sdk.keys.NeedsDatabase",
        "flagapp.sdk.limits.JsonError",
        "flagapp.sdk.events.Invalid",
        "flagapp.sdk.events.TooMany",
        "flagapp.sdk.events.EventError",
    }
)


def _defined_exceptions() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.walk_packages(flagapp.__path__, "flagapp."):
        if ".migrations" in info.name or info.name.startswith("flagapp.management.commands"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found.add(f"{info.name}.{name}")
    return found


def test_exceptions__defined_outside_exceptions_module__only_the_listed_ones() -> None:
    outside = {name for name in _defined_exceptions() if not name.startswith("flagapp.exceptions.")}
    assert outside == ALLOWED


def test_exceptions__every_public_exception__in_all_and_in_the_docstring_hierarchy() -> None:
    doc = exceptions.__doc__ or ""
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, exceptions.FlagappError)
        assert name in doc, name
    for name in ALLOWED:
        assert name.rsplit(".", 1)[1] in doc, name


def test_signature_error__raised_by_verify__is_the_flagapp_error_and_a_value_error() -> None:
    from flagapp.notifications import signing

    assert signing.SignatureError is exceptions.SignatureError
    try:
        signing.verify("secret", "t=1,v1=00", b"{}")
    except ValueError as exc:
        assert isinstance(exc, exceptions.FlagappError)
    else:  # pragma: no cover - verify must refuse
        raise AssertionError("verify accepted a wrong signature")
