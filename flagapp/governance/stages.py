"""Which expiry reminder is due for a flag today: pure date logic, no ORM.

Stages, for an expiry date E, "before" days N and "overdue" interval M:

* ``before``     -- from E-N up to E-1 (one mail: "expires in d days")
* ``due``        -- on E; also the catch-up on E+1 .. E+M-1 if no beat ran on E itself
* ``overdue-k``  -- from E + k*M on (k = 1, 2, ...): one mail every M days while overdue

A stage is a name, not a date, so "sent at most once" becomes a unique row
(flag, expiry date, stage) in ``ReminderLog``: duplicate beat runs and task retries that
compute the same stage on the same (or a later) day collide on that row. The expiry date is
part of the key so moving the expiry re-arms the reminders.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["due_stage", "stage_label"]


def due_stage(
    expiry: dt.date | None, today: dt.date, *, days_before: int = 7, every_days: int = 7
) -> str | None:
    """Return the stage that is due on ``today``, or ``None`` when no reminder applies."""
    if expiry is None:
        return None
    if days_before < 0 or every_days < 1:
        raise ValueError("days_before must be >= 0 and every_days >= 1")
    days_left = (expiry - today).days
    if days_left > days_before:
        return None
    if days_left > 0:
        return "before"
    overdue = -days_left
    k = overdue // every_days
    return "due" if k == 0 else f"overdue-{k}"


def stage_label(stage: str, expiry: dt.date, today: dt.date) -> str:
    """A human subject fragment for the stage ("expires in 3 days", "is 14 days overdue")."""
    days = (expiry - today).days
    if stage == "before":
        return f"expires in {days} day{'s' if days != 1 else ''} ({expiry.isoformat()})"
    if stage == "due" and days == 0:
        return f"expires today ({expiry.isoformat()})"
    return f"is {-days} day{'s' if days != -1 else ''} overdue (expired {expiry.isoformat()})"
