"""The rollout state machine: which action is allowed in which state, and where it leads.

Kept as a table with no ORM so every transition can be tested exhaustively and so the admin,
the API and the Celery task all refuse the same things for the same reasons. The controller
(``flagapp.rollouts.controller``) is the only caller that changes a plan's state; it records
each transition, with its reason, in ``RolloutTransition``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from flagapp.exceptions import InvalidTransition

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Action",
    "InvalidTransition",
    "State",
    "allowed_actions",
    "next_state",
]


class State(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


class Action(StrEnum):
    START = "start"  # draft -> running: the first step is applied
    ADVANCE = "advance"  # running -> running: the next step is applied
    PAUSE = "pause"  # running -> paused: the percentage stays, no further steps
    RESUME = "resume"  # paused -> running: the step clock restarts
    COMPLETE = "complete"  # running -> completed: 100% reached
    ROLLBACK = "rollback"  # running|paused -> rolled_back: the last safe state is restored


TRANSITIONS: Final[dict[tuple[State, Action], State]] = {
    (State.DRAFT, Action.START): State.RUNNING,
    (State.RUNNING, Action.ADVANCE): State.RUNNING,
    (State.RUNNING, Action.PAUSE): State.PAUSED,
    (State.PAUSED, Action.RESUME): State.RUNNING,
    (State.RUNNING, Action.COMPLETE): State.COMPLETED,
    (State.RUNNING, Action.ROLLBACK): State.ROLLED_BACK,
    (State.PAUSED, Action.ROLLBACK): State.ROLLED_BACK,
}

TERMINAL_STATES: Final = frozenset({State.COMPLETED, State.ROLLED_BACK})


def next_state(state: str, action: str) -> State:
    """The state after ``action``; raises ``InvalidTransition`` if it is not allowed."""
    try:
        return TRANSITIONS[(State(state), Action(action))]
    except (KeyError, ValueError):
        allowed = tuple(a.value for a in allowed_actions(state))
        raise InvalidTransition(state, action, allowed) from None


def allowed_actions(state: str) -> tuple[Action, ...]:
    """Actions allowed in ``state``, in declaration order (for buttons and error messages)."""
    try:
        current = State(state)
    except ValueError:
        return ()
    return tuple(action for (s, action) in TRANSITIONS if s == current)
