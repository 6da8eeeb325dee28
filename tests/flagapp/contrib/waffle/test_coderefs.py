"""flagapp_code_refs --waffle: the django-waffle call sites left, with their flagapp keys."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from flagapp.contrib.waffle.coderefs import scan_paths, scan_text

PY = """\
import waffle
from waffle.decorators import waffle_flag
from waffle.testutils import override_switch

@waffle_flag("!beta_page")
def view(request):
    if waffle.flag_is_active(request, "new_checkout"):
        return waffle.switch_is_active('maintenance')
    return waffle.sample_is_active("Survey Sample")

class Reports(WaffleFlagMixin, View):
    waffle_flag = "reports"

@override_switch("dark", active=True)
def test_x(): ...
"""

NATIVE = """\
from flagapp import flag_is_active
from flagapp.testutils import override_flag

def view(request):
    return flag_is_active(request, "checkout.new-flow")
"""

TEMPLATE = """{% load waffle_tags %}
{% flag "new_checkout" %}x{% endflag %}{% switch "maintenance" %}y{% endswitch %}
{% sample "survey" %}z{% endsample %}"""

NATIVE_TEMPLATE = '{% load flagapp %}{% flag "checkout.new-flow" %}x{% endflag %}'


def test_scan_text__python_call_sites__kind_name_and_key() -> None:
    refs = [(r.line, r.kind, r.name, r.key) for r in scan_text(PY, "v.py") if r.key]
    assert refs == [
        (5, "flag", "beta_page", "waffle.beta_page"),
        (7, "flag", "new_checkout", "waffle.new_checkout"),
        (8, "switch", "maintenance", "waffle-switch.maintenance"),
        (9, "sample", "Survey Sample", refs[3][3]),
        (12, "flag", "reports", "waffle.reports"),
        (14, "switch", "dark", "waffle-switch.dark"),
    ]
    assert refs[3][3].startswith("waffle-sample.survey-sample-")
    imports = [r.line for r in scan_text(PY, "v.py") if r.kind == "import"]
    assert imports == [1, 2, 3]


def test_scan_text__flagapp_native_code__nothing() -> None:
    assert list(scan_text(NATIVE, "n.py")) == []
    assert list(scan_text(NATIVE_TEMPLATE, "n.html")) == []


def test_scan_text__templates__tags_of_waffle_tags() -> None:
    refs = [(r.kind, r.key) for r in scan_text(TEMPLATE, "t.html")]
    assert refs == [
        ("import", None),
        ("flag", "waffle.new_checkout"),
        ("switch", "waffle-switch.maintenance"),
        ("sample", "waffle-sample.survey"),
    ]


@pytest.mark.django_db
def test_code_refs_waffle__sites_left__listed_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "views.py").write_text(PY)
    (tmp_path / "page.html").write_text(TEMPLATE)
    (tmp_path / "native.py").write_text(NATIVE)
    out = io.StringIO()
    with pytest.raises(CommandError, match="call site") as exc:
        call_command("flagapp_code_refs", str(tmp_path), "--waffle", stdout=out)
    assert exc.value.returncode == 1
    text = out.getvalue()
    assert "views.py:7  flag 'new_checkout' -> waffle.new_checkout (NOT imported)" in text
    assert "page.html:2  switch 'maintenance' -> waffle-switch.maintenance" in text
    assert "native.py" not in text
    assert len(scan_paths([tmp_path])) == 13


@pytest.mark.django_db
def test_code_refs_waffle__none_left__exit_0_and_json(tmp_path: Path) -> None:
    (tmp_path / "native.py").write_text(NATIVE)
    out = io.StringIO()
    call_command("flagapp_code_refs", str(tmp_path), "--waffle", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"waffle_call_sites": []}
