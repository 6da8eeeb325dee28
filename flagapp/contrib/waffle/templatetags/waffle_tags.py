"""``{% load waffle_tags %}``: ``{% flag %}``, ``{% switch %}`` and ``{% sample %}``.

The tags of django-waffle 5, answered by flagapp::

    {% flag "new_checkout" %}new{% else %}old{% endflag %}
    {% switch "maintenance" %}down for maintenance{% endswitch %}
    {% sample "survey" %}take our survey{% endsample %}

The name may be a variable (``{% flag flag_name %}``); an unresolvable variable is read as
the literal name, as in waffle. ``{% flag %}`` needs ``request`` in the template context.
``{% wafflejs %}`` is not provided (it raises a TemplateSyntaxError naming the
replacement).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token, VariableDoesNotExist

from flagapp.contrib.waffle import flag_is_active, sample_is_active, switch_is_active

register = template.Library()


class WaffleNode(template.Node):
    child_nodelists = ("nodelist_true", "nodelist_false")

    def __init__(
        self,
        nodelist_true: NodeList,
        nodelist_false: NodeList,
        condition: Callable[[Any, str], bool],
        name: str,
        compiled_name: FilterExpression,
    ) -> None:
        self.nodelist_true = nodelist_true
        self.nodelist_false = nodelist_false
        self.condition = condition
        self.name = name
        self.compiled_name = compiled_name

    def __repr__(self) -> str:
        return f"<Waffle node: {self.name}>"

    def render(self, context: template.Context) -> str:
        try:
            name = self.compiled_name.resolve(context)
        except VariableDoesNotExist:
            name = self.name
        if not name:
            name = self.name
        if self.condition(context.get("request", None), str(name)):
            return self.nodelist_true.render(context)
        return self.nodelist_false.render(context)

    @classmethod
    def handle_token(
        cls, parser: Parser, token: Token, kind: str, condition: Callable[[Any, str], bool]
    ) -> WaffleNode:
        bits = token.split_contents()
        if len(bits) < 2:
            raise template.TemplateSyntaxError(f"{bits[0]!r} tag requires an argument")
        name = bits[1]
        compiled_name = parser.compile_filter(name)
        nodelist_true = parser.parse(("else", f"end{kind}"))
        next_token = parser.next_token()
        if next_token.contents == "else":
            nodelist_false = parser.parse((f"end{kind}",))
            parser.delete_first_token()
        else:
            nodelist_false = NodeList()
        return cls(nodelist_true, nodelist_false, condition, name, compiled_name)


@register.tag
def flag(parser: Parser, token: Token) -> WaffleNode:
    return WaffleNode.handle_token(
        parser, token, "flag", lambda request, name: flag_is_active(request, name)
    )


@register.tag
def switch(parser: Parser, token: Token) -> WaffleNode:
    return WaffleNode.handle_token(
        parser, token, "switch", lambda request, name: switch_is_active(name)
    )


@register.tag
def sample(parser: Parser, token: Token) -> WaffleNode:
    return WaffleNode.handle_token(
        parser, token, "sample", lambda request, name: sample_is_active(name)
    )


@register.tag
def wafflejs(parser: Parser, token: Token) -> template.Node:
    raise template.TemplateSyntaxError(
        "{% wafflejs %} is not provided by flagapp.contrib.waffle: evaluate flags in the "
        "browser through OFREP or the JavaScript SDK (docs/api.md)"
    )
