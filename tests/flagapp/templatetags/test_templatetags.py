"""{% load flagapp %}: {% flag %} blocks (with else and negation) and {% flag_value %}."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory

from flagapp.testutils import override_flag
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    Installer,
    clean_flag_cache_fixture,
    flag_doc,
    install_flags_fixture,
)


def _render(source: str, request: Any = None, **extra: Any) -> str:
    if request is None:
        request = RequestFactory().get("/")
        request.user = AnonymousUser()
    return Template("{% load flagapp %}" + source).render(Context({"request": request, **extra}))


@pytest.fixture
def flags(install_flags: Installer) -> None:
    install_flags(
        {
            "ui.on": flag_doc(),
            "ui.off": flag_doc(fallthrough="off"),
            "ui.color": flag_doc("string", {"b": "blue", "g": "green"}, fallthrough="g"),
            "ui.limit": flag_doc("integer", {"small": 5, "big": 50}, fallthrough="big"),
            "ui.pro": flag_doc(
                rules=[
                    {
                        "id": "r1",
                        "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                        "serve": {"variant": "on"},
                    }
                ],
                fallthrough="off",
            ),
        }
    )


@pytest.mark.usefixtures("flags")
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{% flag "ui.on" %}yes{% endflag %}', "yes"),
        ('{% flag "ui.off" %}yes{% endflag %}', ""),
        ('{% flag "ui.on" %}yes{% else %}no{% endflag %}', "yes"),
        ('{% flag "ui.off" %}yes{% else %}no{% endflag %}', "no"),
        ('{% flag "!ui.off" %}yes{% else %}no{% endflag %}', "yes"),
        ('{% flag "!ui.on" %}yes{% else %}no{% endflag %}', "no"),
        ('{% flag "ui.missing" %}yes{% else %}no{% endflag %}', "no"),
        ('{% flag "ui.color" %}yes{% else %}no{% endflag %}', "no"),  # not boolean
        ("{% flag key %}yes{% else %}no{% endflag %}", "yes"),  # a variable key
    ],
)
def test_flag_tag__states__renders_the_right_branch(source: str, expected: str):
    assert _render(source, key="ui.on") == expected


@pytest.mark.usefixtures("flags")
def test_flag_tag__targeting__uses_the_request_context():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request._flagapp_context = {"targetingKey": "u1", "plan": "pro"}  # type: ignore[attr-defined]
    assert _render('{% flag "ui.pro" %}pro{% else %}free{% endflag %}', request) == "pro"
    assert _render('{% flag "ui.pro" %}pro{% else %}free{% endflag %}') == "free"


@pytest.mark.usefixtures("flags")
def test_flag_tag__nested_blocks__each_evaluated():
    source = (
        '{% flag "ui.on" %}A{% flag "ui.off" %}B{% else %}C{% endflag %}{% else %}D{% endflag %}'
    )
    assert _render(source) == "AC"


@pytest.mark.usefixtures("flags")
def test_flag_tag__no_request_in_context__evaluated_for_empty_context():
    out = Template('{% load flagapp %}{% flag "ui.on" %}y{% else %}n{% endflag %}').render(
        Context({})
    )
    assert out == "y"


@pytest.mark.parametrize(
    "source", ["{% flag %}x{% endflag %}", '{% flag "a.b" "c.d" %}x{% endflag %}']
)
def test_flag_tag__wrong_arguments__template_syntax_error(source: str):
    with pytest.raises(TemplateSyntaxError):
        Template("{% load flagapp %}" + source)


@pytest.mark.usefixtures("flags")
def test_flag_value__as_variable__value_or_default():
    source = (
        '{% flag_value "ui.color" "red" as color %}{% flag_value "ui.nope" "red" as d %}'
        '{% flag_value "ui.limit" 1 as limit %}{{ color }}/{{ d }}/{{ limit }}'
    )
    assert _render(source) == "green/red/50"


@pytest.mark.usefixtures("flags")
def test_flag_value__wrong_type_default__default_served():
    assert _render('{% flag_value "ui.color" 3 as c %}{{ c }}') == "3"


@pytest.mark.usefixtures("flags")
def test_flag_value__direct_output__renders_value():
    assert _render('{% flag_value "ui.color" "red" %}') == "green"


def test_flag_tag__override_flag__forced_without_any_snapshot():
    with override_flag("ui.brand-new", active=True):
        assert _render('{% flag "ui.brand-new" %}on{% else %}off{% endflag %}') == "on"
    assert _render('{% flag "ui.brand-new" %}on{% else %}off{% endflag %}') == "off"
