"""One exceptions module per package (issue 12): every public exception class of the
provider package is defined in ``openfeature_provider/exceptions.py`` or, for the engine,
``openfeature_provider/engine/exceptions.py``, and named in that module's hierarchy
docstring. Private classes (a leading underscore: control flow inside one module) are not
counted. No Django needed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import openfeature_provider
from openfeature_provider import exceptions
from openfeature_provider.engine import exceptions as engine_exceptions

HOMES = {"openfeature_provider.exceptions", "openfeature_provider.engine.exceptions"}


def _public_exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(openfeature_provider.__path__, "openfeature_provider."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (e.g. OpenTelemetry) not installed
            continue
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_exception_modules__public_exception_classes__defined_only_in_the_two_homes() -> None:
    outside = sorted(n for n in _public_exception_classes() if n.rsplit(".", 1)[0] not in HOMES)
    assert outside == []


def test_exception_modules__every_class__in_all_and_in_the_hierarchy_docstring() -> None:
    for module in (exceptions, engine_exceptions):
        defined = {
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
        }
        assert defined <= set(module.__all__), module.__name__
        for name in defined:
            assert name in (module.__doc__ or ""), (module.__name__, name)


def test_delta_mismatch__old_import_path__same_class_and_a_parse_error() -> None:
    from openfeature_provider.engine import DeltaMismatch as from_engine
    from openfeature_provider.engine.delta import DeltaMismatch as from_delta

    assert from_engine is from_delta is engine_exceptions.DeltaMismatch
    assert issubclass(from_delta, engine_exceptions.ParseError)
