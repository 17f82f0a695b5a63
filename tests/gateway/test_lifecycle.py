"""The daemon's stop state machine (gateway.lifecycle): legal moves and stop requests."""

from __future__ import annotations

import itertools

import pytest

from gateway.lifecycle import TRANSITIONS, IllegalTransition, Lifecycle, Phase, StopAction

ORDER = [
    Phase.OPENING_STORES,
    Phase.STARTING,
    Phase.RUNNING,
    Phase.DRAINING,
    Phase.CLOSING,
    Phase.STOPPED,
]


def at(phase: Phase) -> Lifecycle:
    """A lifecycle walked to ``phase`` along the normal path."""
    life = Lifecycle()
    for step in ORDER[1 : ORDER.index(phase) + 1]:
        life.advance(step)
    return life


def test_the_normal_path_is_legal_and_public_states_follow_it() -> None:
    """Start-up to stop in order; status shows starting, running, stopping, stopped."""
    life = Lifecycle()
    seen = [life.phase.public]
    for phase in ORDER[1:]:
        life.advance(phase)
        seen.append(life.phase.public)
    assert seen == ["starting", "starting", "running", "stopping", "stopping", "stopped"]


@pytest.mark.parametrize(("start", "to"), list(itertools.product(ORDER, ORDER)))
def test_only_listed_moves_are_allowed(start: Phase, to: Phase) -> None:
    """Every move not in TRANSITIONS raises IllegalTransition and leaves the phase unchanged."""
    life = at(start)
    if to is start or to in TRANSITIONS[start]:
        life.advance(to)
        assert life.phase is to
    else:
        with pytest.raises(IllegalTransition):
            life.advance(to)
        assert life.phase is start


def test_no_way_back_to_running_once_stopping() -> None:
    """A daemon that began draining can never run again; STOPPED is final."""
    for phase in (Phase.DRAINING, Phase.CLOSING, Phase.STOPPED):
        with pytest.raises(IllegalTransition):
            at(phase).advance(Phase.RUNNING)
    assert TRANSITIONS[Phase.STOPPED] == frozenset()


@pytest.mark.parametrize(
    ("phase", "first", "second"),
    [
        (Phase.OPENING_STORES, StopAction.BEGIN, StopAction.FORCE),
        (Phase.STARTING, StopAction.CANCEL_STARTUP, StopAction.SKIP_DRAIN),
        (Phase.RUNNING, StopAction.BEGIN, StopAction.SKIP_DRAIN),
        (Phase.DRAINING, StopAction.BEGIN, StopAction.SKIP_DRAIN),
        (Phase.CLOSING, StopAction.BEGIN, StopAction.FORCE),
    ],
)
def test_first_and_second_stop_request(phase: Phase, first: StopAction, second: StopAction) -> None:
    """First request begins (or cancels start-up); the second skips the drain or forces."""
    life = at(phase)
    assert life.request_stop() is first
    assert life.stop_requested and not life.skip_drain
    assert life.request_stop() is second
    assert life.skip_drain
    assert life.request_stop() is second  # a third is like the second


def test_a_stop_request_after_stopped_does_nothing() -> None:
    """Once stopped, a late signal is not counted."""
    life = at(Phase.STOPPED)
    assert life.request_stop() is StopAction.NONE
    assert life.stop_requests == 0


def test_a_stop_during_opening_stores_is_remembered_for_after_them() -> None:
    """A request while stores open is kept: the daemon aborts start-up once they are open."""
    life = Lifecycle()
    life.request_stop()
    life.advance(Phase.CLOSING)  # the abort path: stores open, then closed, no plugin started
    life.advance(Phase.STOPPED)
    assert life.stop_requests == 1
