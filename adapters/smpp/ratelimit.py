"""Token buckets for submit_sm pacing (sans-IO: the caller passes the time).

An SMSC account is contracted for a rate (e.g. 200 submit_sm/s) shared by all its binds, and a
bind may have its own cap: a sender takes one token from each bucket before every submit_sm.
The bucket holds at most ``burst`` tokens (by default 20 ms worth), so that a sender which
slept a little too long catches up without exceeding the rate over any longer interval.
"""

from __future__ import annotations

import math

# Rounding can leave a bucket a hair short of a token after sleeping exactly until it is due;
# a clock that does not move on its own (Trio's MockClock) would then spin on a zero delay.
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored. ``rate <= 0`` means unlimited."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate * 0.02)
        self._tokens = self.burst
        self._last = now

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on (tokens earned so far are kept, up to the new burst)."""
        self._refill(now)
        self.rate = float(rate)
        self.burst = max(1.0, self.rate * 0.02)
        self._tokens = min(self._tokens, self.burst)
        self._last = now

    def delay(self, now: float, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now)."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        if self._tokens + _EPSILON >= n:
            return 0.0
        return (n - self._tokens) / self.rate

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available now."""
        if self.unlimited:
            return True
        self._refill(now)
        if self._tokens + _EPSILON >= n:
            self._tokens -= n
            return True
        return False

    def available(self, now: float) -> float:
        if self.unlimited:
            return math.inf
        self._refill(now)
        return self._tokens
