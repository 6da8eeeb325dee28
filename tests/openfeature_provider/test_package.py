"""The package surface (issue 12 item 5): ``__all__``, one exceptions module, ProviderConfig."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from openfeature import api

import openfeature_provider
from openfeature_provider import (
    ConfigurationError,
    FlagappProvider,
    FlagappProviderError,
    InMemorySource,
    ProviderConfig,
)
from openfeature_provider import exceptions as exceptions_module
from openfeature_provider.config import ProviderOptions
from tests.openfeature_provider.conftest import make_doc

PACKAGE = Path(openfeature_provider.__file__).parent


def test_package_all__every_name_resolves_and_is_sorted() -> None:
    names = openfeature_provider.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(openfeature_provider, name) is not None


def test_package_all__every_public_exception_reexported() -> None:
    exported = {
        name
        for name, value in vars(exceptions_module).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and not name.startswith("_")
        and value.__module__ == exceptions_module.__name__
    }
    assert exported == set(exceptions_module.__all__)
    assert exported <= set(openfeature_provider.__all__)


def test_exceptions__defined_only_in_exceptions_module() -> None:
    """Outside the engine (which has its own exceptions module), no module of the provider
    package defines a public exception class anywhere but exceptions.py."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.parts[0] in ("exceptions", "engine"):
            continue
        module = ".".join(("openfeature_provider", *relative.parts)).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                cls = getattr(importlib.import_module(module), node.name, None)
                if inspect.isclass(cls) and issubclass(cls, BaseException):
                    offenders.append(f"{module}.{node.name}")
    assert offenders == []


def test_exceptions__hierarchy_in_docstring_names_every_class() -> None:
    doc = exceptions_module.__doc__ or ""
    for name in exceptions_module.__all__:
        assert name in doc, name


def test_import__package_does_not_pull_in_openfeature_or_httpx() -> None:
    code = (
        "import sys, openfeature_provider, openfeature_provider.engine;"
        "print(any(m.split('.')[0] in ('openfeature', 'httpx') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config__typed_dict_matches_dataclass_fields() -> None:
    fields = {f.name for f in dataclasses.fields(ProviderConfig)} - {"url", "sdk_key"}
    assert (
        set(ProviderOptions.__optional_keys__) == fields and not ProviderOptions.__required_keys__
    )


def test_config__provider_accepts_config_and_keywords_override() -> None:
    base = ProviderConfig(source=InMemorySource(make_doc()), stale_after=7.0, name="base")
    provider = FlagappProvider(config=base, name="override")
    assert provider.config.stale_after == 7.0
    assert provider.get_metadata().name == "override"
    api.set_provider_and_wait(provider)
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"


def test_config__same_defaults_as_keywords() -> None:
    source = InMemorySource(make_doc())
    assert FlagappProvider(source=source).config == ProviderConfig(source=source)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("exposure_sample_rate", 1.5),
        ("stale_after", -1),
        ("fetch_timeout", 0),
        ("max_response_bytes", 0),
        ("event_max_attempts", 0),
        ("backoff_max", 0.1),
    ],
)
def test_config__invalid_value__configuration_error_naming_field(
    option: str, value: object
) -> None:
    with pytest.raises(ConfigurationError, match=option) as caught:
        ProviderConfig(**{option: value})  # type: ignore[arg-type]
    assert caught.value.field == option
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, FlagappProviderError)


def test_config__unknown_keyword__type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="poll_intervall"):
        FlagappProvider(source=InMemorySource(make_doc()), poll_intervall=3)  # type: ignore[call-arg]
