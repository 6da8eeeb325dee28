"""Who is told about a flag: the e-mail addresses of its owner group.

A module of its own because two senders read it, the expiry reminders
(:mod:`flagapp.governance.reminders`) and the notification dispatcher (a rolled-back
rollout e-mails the owners), and the reminders import the dispatcher: kept in the
reminders, it made the two modules import each other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["owner_emails"]


def owner_emails(flag: Any) -> list[str]:
    """Addresses of the active members of the flag's owner group, sorted, deduplicated."""
    users = flag.owner.user_set.filter(is_active=True).exclude(email="")
    return sorted({u.email for u in users})
