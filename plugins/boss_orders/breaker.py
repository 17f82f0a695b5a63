"""A circuit breaker for calls to a peer that may be down (the BOSS).

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: calls are
refused at once (no timeout is paid per call while the peer is down) for ``reset_after``
seconds, then one trial call is let through (half-open): a success closes the breaker, a
failure opens it again. Pure state; the caller passes the time (Trio's clock in the plugin,
so tests drive it with ``autojump_clock``).
"""

from __future__ import annotations

import enum

import attrs


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.define
class CircuitBreaker:
    failure_threshold: int = 5
    reset_after: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    opened_count: int = 0

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open state only one trial call at a time."""
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.reset_after:
                return False
            self.state = BreakerState.HALF_OPEN
            self.trial_in_flight = False
        if self.state is BreakerState.HALF_OPEN:
            if self.trial_in_flight:
                return False
            self.trial_in_flight = True
        return True

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                self.opened_count += 1
            self.state = BreakerState.OPEN
            self.opened_at = now

    def retry_in(self, now: float) -> float:
        """Seconds until a call may be tried again (0 when closed)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.reset_after - (now - self.opened_at))
        return 0.0
