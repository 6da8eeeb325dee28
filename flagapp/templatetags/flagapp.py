"""``{% load flagapp %}``: ``{% flag %}``, ``{% flag_value %}`` and ``{% flagapp_bootstrap %}``.

::

    {% flag "checkout.new-flow" %}new checkout{% else %}old checkout{% endflag %}
    {% flag "!checkout.new-flow" %}shown while the flag is off{% endflag %}
    {% flag_value "checkout.button-color" "blue" as color %}
    {% flagapp_bootstrap %}  {# <script id="flagapp-bootstrap" type="application/json"> #}

The flag is evaluated for the ``request`` in the template context (a ``RequestContext``,
i.e. ``render(request, ...)`` with the request context processor), through the same
``flagapp.evaluate`` as views, so the per-request context is built once per page. Without a
request the flag is evaluated for an empty context (fine for kill switches, wrong for
targeting: a warning is logged once).
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token
from django.utils.html import json_script
from django.utils.safestring import SafeString

from flagapp.evaluation import evaluate

register = template.Library()
logger = logging.getLogger("flagapp")
_warned_no_request = False


def _request_of(context: template.Context) -> Any:
    global _warned_no_request
    request = context.get("request")
    if request is None and not _warned_no_request:
        _warned_no_request = True
        logger.warning(
            "flagapp: a flag tag was rendered without `request` in the template context; "
            "it is evaluated for an empty context (add the request context processor)"
        )
    return request


class FlagNode(template.Node):
    child_nodelists = ("nodelist_on", "nodelist_off")

    def __init__(self, key: FilterExpression, nodelist_on: NodeList, nodelist_off: NodeList):
        self.key = key
        self.nodelist_on = nodelist_on
        self.nodelist_off = nodelist_off

    def render(self, context: template.Context) -> str:
        key = str(self.key.resolve(context))
        negate = key.startswith("!")
        if negate:
            key = key[1:]
        active = evaluate(key, False, _request_of(context)).value is True
        if active != negate:
            return self.nodelist_on.render(context)
        return self.nodelist_off.render(context)


@register.tag("flag")
def do_flag(parser: Parser, token: Token) -> FlagNode:
    """``{% flag "key" %}…{% else %}…{% endflag %}``; a leading ``!`` negates."""
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError(
            f'{bits[0]!r} takes exactly one argument, the flag key (e.g. {{% flag "a.b" %}})'
        )
    key = parser.compile_filter(bits[1])
    nodelist_on = parser.parse(("else", "endflag"))
    next_token = parser.next_token()
    if next_token.contents == "else":
        nodelist_off = parser.parse(("endflag",))
        parser.delete_first_token()
    else:
        nodelist_off = NodeList()
    return FlagNode(key, nodelist_on, nodelist_off)


@register.simple_tag(takes_context=True)
def flag_value(context: template.Context, key: str, default: Any = None) -> Any:
    """``{% flag_value "key" default as var %}``: the flag's value, or ``default``.

    The kind asked for follows the default's type, like ``flagapp.evaluate``; with no default
    any kind is accepted.
    """
    return evaluate(str(key), default, _request_of(context)).value


@register.simple_tag(takes_context=True)
def flagapp_bootstrap(
    context: template.Context, element_id: str = "flagapp-bootstrap", environment: str = ""
) -> SafeString:
    """``{% flagapp_bootstrap ["element-id"] [environment="..."] %}``: every flag evaluated for
    this request, as a ``<script type="application/json">`` element a client-side SDK reads
    before its first request (docs/interop.md, "Bootstrap").

    The JSON is exactly the OFREP bulk answer a client-side key gets for the request's
    context (``flagapp.sdk.ofrep.bulk_payload``: value, variant, reason and OFREP flag
    metadata per flag, failures inline, ``metadata.snapshotVersion``) -- nothing of the
    ruleset (rules, segment member lists) and not the context itself, which may hold the
    session key or the client's address. ``<``, ``>`` and ``&`` are escaped
    (``django.utils.html.json_script``), so no value can close the element. Renders
    ``{"flags": []}`` while nothing is published. Exposures are not recorded: the page
    records what it evaluates. Overrides of ``flagapp.testutils`` are not applied.
    """
    from flagapp.evaluation import get_ruleset
    from flagapp.evaluation.context import context_for_request
    from flagapp.sdk.ofrep import bulk_payload

    request = _request_of(context)
    ruleset = get_ruleset(str(environment) or None)
    payload: dict[str, Any] = {"flags": []}
    if ruleset is not None:
        ctx = context_for_request(request) if request is not None else {}
        payload = bulk_payload(ruleset, ctx)
    return json_script(payload, str(element_id))
