"""Governance and flag lifecycle: change requests, blast radius, reminders, reports, code refs.

The submodules are imported on demand (``from flagapp.governance import blast_radius``): the
pure ones (``coderefs``, ``operations``, ``reminders`` stage logic, ``blast_radius.compare``)
need neither the ORM nor a configured Django, so the lint and code-ref tools stay cheap to
import.
"""

from __future__ import annotations

__all__ = [
    "blast_radius",
    "change_requests",
    "coderefs",
    "diff",
    "lint",
    "operations",
    "preview",
    "proposals",
    "reminders",
    "stages",
    "stale",
]
