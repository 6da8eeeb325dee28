"""The request → evaluation context step, under its documented name.

The code lives in :mod:`flagapp.evaluation.context`; this module keeps
``flagapp.context.default_context`` (the default of ``FLAGAPP["CONTEXT_BUILDER"]``) and the
other names importable from where projects already import them.
"""

from __future__ import annotations

from flagapp.evaluation.context import (
    CONTEXT_ATTR,
    ContextBuilder,
    client_ip,
    context_for_request,
    default_context,
    get_context_builder,
)

__all__ = [
    "CONTEXT_ATTR",
    "ContextBuilder",
    "client_ip",
    "context_for_request",
    "default_context",
    "get_context_builder",
]
