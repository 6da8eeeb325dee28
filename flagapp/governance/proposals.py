"""The document a proposed change would publish, for evaluating it before it is approved.

Why: a reviewer asks "what would this change do to *this* user?" — the admin's playground
answers it by evaluating the proposed document with the engine's explainer next to the
published one. The document is made the way the blast-radius preview makes its "after"
side (``change_requests.preview``): the change is applied through ``services.apply_change``
in a transaction that is then rolled back, and the environment is compiled by
``documents.compile_environment`` in between — so it is exactly what approving would
publish, and a change the services would refuse (a stale base version, a now-invalid rule)
raises the same error here instead of showing a made-up result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from flagapp.policy import GrantedApproval

__all__ = ["proposed_document"]


class _Rollback(Exception):
    """Raised to roll the dry run back."""


def proposed_document(change: Mapping[str, Any], environment: Any) -> dict[str, Any]:
    """The format-v1 document ``environment`` would publish once ``change`` is applied.

    Raises what the services raise for the change (``FlagValidationError``,
    ``VersionConflict``...). Nothing is written: the transaction is rolled back, and with
    it the publish-on-commit callbacks the services registered.
    """
    from flagapp import services
    from flagapp.documents import compile_environment

    document: dict[str, Any] = {}
    try:
        with transaction.atomic():
            services.apply_change(
                change, actor=None, reason="playground preview", change_request=GrantedApproval()
            )
            document = compile_environment(environment)
            raise _Rollback
    except _Rollback:
        pass
    return document
