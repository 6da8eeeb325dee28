"""What a proposed change would publish, computed by applying it and rolling it back.

Why: a reviewer asks "what would this change do?" — to *this* user (the admin's playground
evaluates the proposed document with the engine's explainer next to the published one), or
to everyone sampled (the blast radius, :mod:`flagapp.governance.preview`). Both get the
documents the same way, here: the change is applied through ``services.apply_change`` in a
transaction that is then rolled back, and the environments are compiled by
``documents.compile_environment`` in between — so each is exactly what approving would
publish, and a change the services would refuse (a stale base version, a now-invalid rule)
raises the same error here instead of showing a made-up result. The rollback also discards
the publish-on-commit callbacks the services registered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from flagapp.documents import compile_environment
from flagapp.policy import GrantedApproval
from flagapp.services import apply_change

__all__ = ["documents_after", "proposed_document"]


class _Rollback(Exception):
    """Raised to roll the dry run back."""


def documents_after(
    change: Mapping[str, Any], environments: Iterable[Any], *, reason: str
) -> dict[int, dict[str, Any]]:
    """``{environment pk: format-v1 document}`` of ``environments`` once ``change`` is
    applied. Raises what the services raise for the change (``FlagValidationError``,
    ``VersionConflict``...); nothing is written."""
    envs = list(environments)
    after: dict[int, dict[str, Any]] = {}
    try:
        with transaction.atomic():
            apply_change(change, actor=None, reason=reason, change_request=GrantedApproval())
            after = {env.pk: compile_environment(env) for env in envs}
            raise _Rollback
    except _Rollback:
        pass
    return after


def proposed_document(change: Mapping[str, Any], environment: Any) -> dict[str, Any]:
    """The format-v1 document ``environment`` would publish once ``change`` is applied."""
    return documents_after(change, [environment], reason="playground preview")[environment.pk]
