"""Every exception flagapp raises, in one module so callers have one import.

Hierarchy::

    FlagappError
    ├── FlagValidationError   (also django.core.exceptions.ValidationError) bad input;
    │                         ``message_dict`` is keyed by field name
    ├── VersionConflict       the edited version is stale; ``current_version`` says the latest
    ├── ApprovalRequired      the change needs an approved change request; carries the change
    ├── ChangeNotPermitted    the actor may not make this change
    ├── ChangeProposed        (REST API) a write needing approval became a change request
    ├── InvalidTransition     a rollout action not allowed in the plan's current state
    ├── MetricSourceError     a rollout metric source could not answer (no judgement)
    ├── SignatureError        (also ValueError) a webhook request's flagapp-signature does
    │                         not verify (``flagapp.notifications.verify``)
    └── FlagValidationError
        ├── KeyReuseError     a deleted flag's key was reused
        ├── DuplicateChangeRequest  the same change is already pending (existing_id)
        └── ConfigImportError a flags-as-code import was refused (keys are document paths)

The REST API maps them to 400 (validation, key reuse, import) / 409 (version conflict,
invalid transition) / 202-or-409 (approval) / 403 (not permitted) / 202 (proposed); the
admin shows them as form errors or messages. Engine parse errors stay
``openfeature_provider.engine.ParseError`` and are converted to ``FlagValidationError`` by
the services.

Not here, on purpose (a test lists every exception class defined outside this module):

* ``flagapp.api.preconditions.PreconditionRequired`` — a DRF ``APIException`` (428), the
  REST API's own answer; this module does not import DRF.
* The SDK endpoints' internal errors, answered on the spot and never raised out of
  ``flagapp.sdk``: ``sdk.keys.AuthFailure`` (401/403/503) and ``NeedsDatabase``,
  ``sdk.limits.JsonError``, ``sdk.events.Invalid`` / ``TooMany`` / ``EventError``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

__all__ = [
    "ApprovalRequired",
    "ChangeNotPermitted",
    "ChangeProposed",
    "ConfigImportError",
    "DuplicateChangeRequest",
    "FlagValidationError",
    "FlagappError",
    "InvalidTransition",
    "KeyReuseError",
    "MetricSourceError",
    "SignatureError",
    "VersionConflict",
]


class FlagappError(Exception):
    """Base of every flagapp error."""


class FlagValidationError(FlagappError, ValidationError):
    """Invalid input. Always built from a dict ``{field: [messages]}`` so forms and the API
    can attach each message to its field (``"__all__"`` for non-field errors)."""

    def __init__(self, errors: Mapping[str, Any] | str) -> None:
        if isinstance(errors, str):
            errors = {"__all__": [errors]}
        normalised: dict[str, list[str]] = {}
        for field, msgs in errors.items():
            if isinstance(msgs, str | ValidationError):
                msgs = [msgs]
            out: list[str] = []
            for m in msgs:
                if isinstance(m, ValidationError):
                    out.extend(m.messages)
                else:
                    out.append(str(m))
            normalised[field] = out
        ValidationError.__init__(self, normalised)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in self.message_dict.items())


class VersionConflict(FlagappError):
    """The caller edited ``expected_version`` but the stored one is ``current_version``.
    Nothing was written; reload and retry."""

    def __init__(
        self, current_version: int, expected_version: int | None = None, resource: str = ""
    ) -> None:
        self.current_version = current_version
        self.expected_version = expected_version
        #: What was edited, in words: ``flag checkout.new-flow``, ``segment beta``,
        #: ``environment production``, ``checkout.new-flow in production``.
        self.resource = resource
        where = f"{resource}: " if resource else ""
        super().__init__(
            f"{where}stale version {expected_version}: the current version is {current_version}"
        )


class ApprovalRequired(FlagappError):
    """The change touches a high-risk flag or a protected environment and no approved change
    request was given. ``change`` describes the proposed change (operation name and its
    keyword arguments, JSON-friendly) so governance can turn it into a change request."""

    def __init__(self, change: Mapping[str, Any], message: str | None = None) -> None:
        self.change = dict(change)
        super().__init__(message or "this change needs an approved change request")


class ChangeNotPermitted(FlagappError):
    """The actor lacks the permission for this change (or the change request does not
    cover it)."""


class KeyReuseError(FlagValidationError):
    """A flag key that was used before (a tombstone exists) cannot be reused."""

    def __init__(self, key: str, deleted_at: dt.datetime | None = None) -> None:
        self.key = key
        self.deleted_at = deleted_at
        when = f" on {deleted_at:%Y-%m-%d %H:%M} UTC" if deleted_at else ""
        super().__init__(
            {
                "key": [
                    f"the key {key!r} belonged to a flag deleted{when}; flag keys are never reused"
                ]
            }
        )


class DuplicateChangeRequest(FlagValidationError):
    """An identical change, made against the same version, is already pending review:
    ``existing_id`` is that request (the admin links to it)."""

    def __init__(self, existing_id: int) -> None:
        self.existing_id = existing_id
        super().__init__(
            {
                "__all__": [
                    f"an identical change is already pending review as change request "
                    f"#{existing_id}"
                ]
            }
        )


class ConfigImportError(FlagValidationError):
    """A flags-as-code import was refused; ``message_dict`` keys are document paths
    (``flag checkout.new-flow``, ``document``...)."""


class ChangeProposed(FlagappError):
    """Raised by a REST view when a write needed approval and a change request now holds it:
    the API's exception handler answers 202 with the change and the request."""

    def __init__(self, approval: ApprovalRequired, change_request: Any = None) -> None:
        super().__init__(str(approval))
        self.approval = approval
        self.change_request = change_request


class InvalidTransition(FlagappError):
    """The rollout action is not allowed in the plan's current state (nothing was changed)."""

    def __init__(self, state: str, action: str, allowed: tuple[str, ...] = ()) -> None:
        self.state = state
        self.action = action
        self.allowed = allowed
        listed = ", ".join(allowed) or "none"
        super().__init__(f"cannot {action} a rollout that is {state} (allowed: {listed})")


class MetricSourceError(FlagappError):
    """A rollout metric source could not answer (unreachable, bad query, malformed reply).

    The controller treats this as "no judgement" for the tick: it neither steps nor rolls
    back on missing data, and it records the error in the plan's last check.
    """


class SignatureError(FlagappError, ValueError):
    """A webhook request is not signed with the endpoint's secret, or is too old to be
    trusted (``flagapp.notifications.verify``; a ``ValueError`` so receivers written against
    the standard library's errors still catch it)."""
