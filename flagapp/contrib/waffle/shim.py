"""Make ``import waffle`` (and ``waffle.decorators``, ``waffle.testutils``, ...) resolve to
:mod:`flagapp.contrib.waffle`.

Why an import hook: the point of the compatibility layer is that call sites do not change,
and they say ``from waffle import flag_is_active``. django-waffle's module layout is
mirrored here (``waffle`` → ``flagapp.contrib.waffle``, ``waffle.decorators`` →
``flagapp.contrib.waffle.decorators``, ...), so a finder placed first on ``sys.meta_path``
maps each ``waffle[.x]`` import to the same module object under both names — even while the
django-waffle distribution is still installed (its tables stay, for a rollback).
Modules this layer does not provide (``waffle.models``, ``waffle.admin``, ``waffle.views``,
``waffle.urls``, ``waffle.jinja``, ``waffle.management``...) fail with a
``ModuleNotFoundError`` saying what to use instead.

:class:`flagapp.contrib.waffle.apps.WaffleCompatConfig` calls :func:`install` while Django
loads the apps, before any models module is imported. Code that imports ``waffle`` earlier
(settings, a conftest) can call :func:`install` itself first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["PROVIDED", "WaffleAliasFinder", "install", "installed", "uninstall"]

TARGET = "flagapp.contrib.waffle"

#: ``waffle.<x>`` modules this layer provides.
PROVIDED = frozenset(
    {
        "decorators",
        "mixins",
        "testutils",
        "middleware",
        "templatetags",
        "templatetags.waffle_tags",
    }
)

_HINTS = {
    "models": "flags live in flagapp now (flagapp.models.Flag, keys waffle.<name>); in tests "
    "use waffle.testutils.override_flag instead of creating waffle rows",
    "admin": "manage flags in flagapp's admin",
    "views": "wafflejs and waffle_status are not provided: use OFREP or the SDK endpoints",
    "urls": "wafflejs and waffle_status are not provided: use OFREP or the SDK endpoints",
    "management": "use flagapp's commands (docs/cli.md)",
    "jinja": "the Jinja2 extension is not provided: call waffle.flag_is_active in a global",
}

_lock = threading.Lock()


class _AliasLoader(importlib.abc.Loader):
    """Serves an already importable module under a second name, unchanged."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias spec on the module; keep its real identity
        # (relative imports and pickling go by it).
        module.__spec__ = self._spec


class WaffleAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "waffle" and not fullname.startswith("waffle."):
            return None
        sub = fullname[len("waffle.") :] if fullname != "waffle" else ""
        if sub and sub not in PROVIDED:
            hint = _HINTS.get(sub.split(".", 1)[0], "see docs/migrating-from-waffle.md")
            raise ModuleNotFoundError(
                f"{fullname} is not provided by flagapp.contrib.waffle (it replaces "
                f"django-waffle in INSTALLED_APPS): {hint}",
                name=fullname,
            )
        target_name = TARGET + (f".{sub}" if sub else "")
        is_package = sub in ("", "templatetags")
        return importlib.util.spec_from_loader(
            fullname, _AliasLoader(target_name), is_package=is_package
        )


_finder = WaffleAliasFinder()


def installed() -> bool:
    return _finder in sys.meta_path


def _foreign_waffle() -> ModuleType | None:
    mod = sys.modules.get("waffle")
    if mod is None or mod is sys.modules.get(TARGET):
        return None
    return mod


def install() -> None:
    """Route ``import waffle[...]`` to this layer. Refuses when the real django-waffle was
    already imported in this process (its objects would be mixed with these)."""
    with _lock:
        if installed():
            return
        foreign = _foreign_waffle()
        if foreign is not None:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "django-waffle was imported before flagapp.contrib.waffle took over "
                f"'import waffle' (from {getattr(foreign, '__file__', '?')}): remove 'waffle' "
                "from INSTALLED_APPS and list flagapp.contrib.waffle before the apps that "
                "import waffle (or call flagapp.contrib.waffle.shim.install() earlier)"
            )
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo :func:`install` (tests): drop the finder and the ``waffle`` aliases."""
    with _lock:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for name in [n for n in sys.modules if n == "waffle" or n.startswith("waffle.")]:
            mod = sys.modules[name]
            if getattr(mod, "__name__", "").startswith(TARGET):
                del sys.modules[name]
