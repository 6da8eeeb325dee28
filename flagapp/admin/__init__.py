"""The Django admin of flagapp: every save goes through :mod:`flagapp.services`.

Why the admin does not save models itself: the services are the one write path (validation
by the engine's parser, governance, version check, history with a reason, publishing).

The package, one concern per module:

- :mod:`~flagapp.admin.base` — plumbing shared by every ModelAdmin (service step during
  validation, service error -> form field, reason-asking actions, read-only history);
- :mod:`~flagapp.admin.flags` — flags (list, flag page, variants, states per environment);
- :mod:`~flagapp.admin.overview` — the flag page's per-environment cards, the on/off toggle
  per environment (page and list), the pending-request count on the admin index;
- :mod:`~flagapp.admin.states` — one flag state with its rules edited one by one;
- :mod:`~flagapp.admin.resources` — segments (with where they are used), environments,
  published snapshots;
- :mod:`~flagapp.admin.sdk_keys` — SDK keys (create shows the token once, revoke);
- :mod:`~flagapp.admin.governance` — change requests (review, approve, propose from a save,
  blast-radius confirmation);
- :mod:`~flagapp.admin.rollouts` — rollout plans and experiments;
- :mod:`~flagapp.admin.forms` — the forms; :mod:`~flagapp.admin.syntax` — the text syntaxes
  (pure functions, docs/admin.md).
"""

from __future__ import annotations

from django.contrib import admin

from flagapp import admin_tokens  # noqa: F401 - API tokens (registered there)

from . import governance, notifications, resources, rollouts, sdk_keys, states  # noqa: F401
from .base import ServiceAdminMixin, attach_errors, reason_action
from .flags import FlagAdmin
from .overview import use_index_template
from .resources import EnvironmentAdmin, SegmentAdmin, SnapshotAdmin
from .states import FlagStateAdmin

use_index_template(admin.site)  # the pending change-request count on the index

__all__ = [
    "EnvironmentAdmin",
    "FlagAdmin",
    "FlagStateAdmin",
    "SegmentAdmin",
    "ServiceAdminMixin",
    "SnapshotAdmin",
    "attach_errors",
    "reason_action",
]
