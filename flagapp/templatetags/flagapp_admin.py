"""Admin template tags of flagapp: ``{% load flagapp_admin %}``.

``{% flagapp_pending_change_requests %}`` — how many change requests wait for review,
linked to the filtered list, for users who may see change requests (nothing otherwise).
flagapp's admin index template uses it; a project with its own index template can add it
there (docs/admin.md).
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("admin/flagapp/pending_change_requests.html", takes_context=True)
def flagapp_pending_change_requests(context: Any) -> dict[str, Any]:
    from flagapp.admin.overview import pending_change_requests

    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return {"pending": pending_change_requests(user) if user is not None else None}
