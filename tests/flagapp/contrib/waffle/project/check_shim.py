"""Run with settings_compat: prints how ``import waffle`` resolves."""

import django

django.setup()

import waffle  # noqa: E402
import waffle.decorators  # noqa: E402
import waffle.testutils  # noqa: E402

import flagapp.contrib.waffle  # noqa: E402
import flagapp.contrib.waffle.decorators  # noqa: E402

print("SAME_PACKAGE", waffle is flagapp.contrib.waffle)
print("SAME_DECORATORS", waffle.decorators is flagapp.contrib.waffle.decorators)
print("SPEC", waffle.__spec__.name)
try:
    import waffle.models
except ModuleNotFoundError as exc:
    print("MODELS", exc)
