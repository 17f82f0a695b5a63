"""The daemon's lifecycle as one state machine, and what the admin faces see of the daemon.

:class:`Lifecycle` is pure (no Trio, no I/O): the daemon asks it to ``advance`` from phase to
phase, and on each stop request (SIGTERM, SIGINT, ``Daemon.request_stop``) it answers which
:class:`StopAction` the daemon must carry out on its cancel scopes. Illegal moves raise
:class:`IllegalTransition`, so a wrong order of start-up or shutdown steps is a bug that shows.

Phases, in order (``-x->`` marks the shortcuts of an aborted start-up)::

    OPENING_STORES -> STARTING -> RUNNING -> DRAINING -> CLOSING -> STOPPED
          |              '---x--> DRAINING (abort while plugin objects start)
          '---x--> CLOSING (abort while stores open)

and from any phase before CLOSING straight to CLOSING when an error escapes (a store or a
plugin failing to start, a bug): the stores are closed whatever happened.

Stop requests:

- the first one while OPENING_STORES takes effect once the stores are open (nothing can
  interrupt a store that opens); while STARTING, at once (``CANCEL_STARTUP``); while RUNNING
  it begins the shutdown (``BEGIN``);
- a second one skips what is left of the drain (``SKIP_DRAIN``) or, while a store opens or
  closes and nothing else would ever stop it, cancels everything (``FORCE``).

:class:`DaemonView` is the part of the daemon the control socket is given: the daemon is the
composition root, and nothing imports it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    import pluggy

    from gateway.app import Gateway
    from gateway.config import GatewayConfig
    from gateway.contracts import AdminCommand
    from gateway.errors import ConfigError
    from gateway.supervisor import Supervisor


class Phase(enum.Enum):
    """Where the daemon is in its life."""

    OPENING_STORES = "opening_stores"
    STARTING = "starting"  # gateway_start, registration hooks, starting plugin objects
    RUNNING = "running"
    DRAINING = "draining"  # intake stopped; pipeline, services and channels drain
    CLOSING = "closing"  # every task cancelled; stores close in reverse order
    STOPPED = "stopped"

    @property
    def public(self) -> str:
        """The coarse state ``gatewayctl status`` shows: starting, running or stopping."""
        if self in (Phase.OPENING_STORES, Phase.STARTING):
            return "starting"
        if self is Phase.RUNNING:
            return "running"
        return "stopping" if self is not Phase.STOPPED else "stopped"


#: Legal moves. Every phase may also stay where it is (no move).
TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.OPENING_STORES: frozenset({Phase.STARTING, Phase.CLOSING}),
    Phase.STARTING: frozenset({Phase.RUNNING, Phase.DRAINING, Phase.CLOSING}),
    Phase.RUNNING: frozenset({Phase.DRAINING, Phase.CLOSING}),
    Phase.DRAINING: frozenset({Phase.CLOSING}),
    Phase.CLOSING: frozenset({Phase.STOPPED}),
    Phase.STOPPED: frozenset(),
}


class StopAction(enum.Enum):
    """What the daemon does for one stop request."""

    BEGIN = "begin"  # first request: stop intake, drain, close (at the next step of start-up)
    CANCEL_STARTUP = "cancel_startup"  # first request while plugin objects start
    SKIP_DRAIN = "skip_drain"  # second request: cancel the drain (now, or when it begins)
    FORCE = "force"  # second request while a store opens or closes: cancel everything
    NONE = "none"  # already stopped, or a repeat with nothing left to cut short


class IllegalTransition(RuntimeError):
    """Raised by :meth:`Lifecycle.advance` for a move that :data:`TRANSITIONS` does not allow."""


@attrs.define
class Lifecycle:
    """The phase of the daemon and how many stop requests it had."""

    phase: Phase = Phase.OPENING_STORES
    stop_requests: int = 0

    @property
    def stop_requested(self) -> bool:
        return self.stop_requests > 0

    @property
    def skip_drain(self) -> bool:
        """A second request came: the drain is skipped (or cut short)."""
        return self.stop_requests > 1

    def advance(self, to: Phase) -> None:
        """Move to ``to``; raises IllegalTransition if that move is not allowed."""
        if to is self.phase:
            return
        if to not in TRANSITIONS[self.phase]:
            raise IllegalTransition(f"daemon phase {self.phase.value} -> {to.value} is not legal")
        self.phase = to

    def request_stop(self) -> StopAction:
        """Count one stop request and say what to do about it."""
        if self.phase is Phase.STOPPED:
            return StopAction.NONE
        self.stop_requests += 1
        if self.stop_requests == 1:
            return StopAction.CANCEL_STARTUP if self.phase is Phase.STARTING else StopAction.BEGIN
        if self.phase in (Phase.OPENING_STORES, Phase.CLOSING):
            return StopAction.FORCE
        if self.phase in (Phase.STARTING, Phase.RUNNING, Phase.DRAINING):
            return StopAction.SKIP_DRAIN
        return StopAction.NONE  # pragma: no cover - every phase is handled above


class RegisteredView(Protocol):
    """The objects plugins registered, with the plugin that returned each (for ``status``)."""

    @property
    def services(self) -> Sequence[tuple[str, object]]: ...

    @property
    def sources(self) -> Sequence[tuple[str, object]]: ...

    @property
    def channels(self) -> Sequence[tuple[str, object]]: ...


class DaemonView(Protocol):
    """What the control socket's built-in commands use of the running daemon.

    The daemon passes itself; the control socket never imports :mod:`gateway.daemon`.
    """

    @property
    def config(self) -> GatewayConfig: ...

    @property
    def config_path(self) -> Path: ...

    @property
    def gateway(self) -> Gateway: ...

    @property
    def pm(self) -> pluggy.PluginManager: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def state(self) -> str: ...

    @property
    def reloads(self) -> int: ...

    @property
    def registered(self) -> RegisteredView: ...

    @property
    def restart_required(self) -> list[str]: ...

    @property
    def commands(self) -> Mapping[str, tuple[str, AdminCommand]]: ...

    def reload(self, *, reason: str = "requested") -> ConfigError | None: ...

    def check_config(self, path: Path | None = None) -> ConfigError | None: ...
