"""The rollout state machine table: every allowed transition, and every refused one."""

from __future__ import annotations

import itertools

import pytest

from flagapp.rollouts.states import (
    TERMINAL_STATES,
    Action,
    InvalidTransition,
    State,
    allowed_actions,
    next_state,
)

ALLOWED = {
    (State.DRAFT, Action.START): State.RUNNING,
    (State.RUNNING, Action.ADVANCE): State.RUNNING,
    (State.RUNNING, Action.PAUSE): State.PAUSED,
    (State.PAUSED, Action.RESUME): State.RUNNING,
    (State.RUNNING, Action.COMPLETE): State.COMPLETED,
    (State.RUNNING, Action.ROLLBACK): State.ROLLED_BACK,
    (State.PAUSED, Action.ROLLBACK): State.ROLLED_BACK,
}


@pytest.mark.parametrize(("state", "action"), list(ALLOWED))
def test_next_state__allowed_pair__target_state(state: State, action: Action) -> None:
    assert next_state(state, action) is ALLOWED[(state, action)]


REFUSED = [pair for pair in itertools.product(State, Action) if pair not in ALLOWED]


@pytest.mark.parametrize(("state", "action"), REFUSED)
def test_next_state__refused_pair__invalid_transition(state: State, action: Action) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(state, action)
    assert info.value.state == state
    assert f"cannot {action}" in str(info.value)


def test_terminal_states__no_action_allowed() -> None:
    for state in TERMINAL_STATES:
        assert allowed_actions(state) == ()


def test_allowed_actions__paused__resume_and_rollback() -> None:
    assert allowed_actions("paused") == (Action.RESUME, Action.ROLLBACK)


def test_next_state__unknown_strings__invalid_transition() -> None:
    with pytest.raises(InvalidTransition):
        next_state("flying", "start")
    with pytest.raises(InvalidTransition):
        next_state("draft", "explode")
