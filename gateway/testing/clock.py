"""A fake wall clock for components that take a ``clock`` (``time.time``-like) callable."""

from __future__ import annotations

import attrs
import trio


@attrs.define
class FakeClock:
    """Wall-clock seconds that move only when told, or with Trio's clock.

    Contact control, the outbox and the rules take ``clock=`` arguments that default to
    ``time.time``; pass a ``FakeClock`` instead. ``advance(s)`` moves it by hand. With
    ``follow_trio=True`` it reads ``epoch + trio.current_time()``, so a test running under
    Trio's ``MockClock`` (the ``autojump_clock`` fixture) moves wall time and Trio timers
    together: a quiet-hours window or a lease expiry passes without a real sleep.

    Beware: under autojump the clock jumps whenever every task waits, including while one
    waits for a worker thread (SQLite). A background loop that sleeps between passes then falls
    behind the clock; call its pass yourself (``outbox.tick()``) at the times the test names.
    """

    epoch: float = 1_772_000_000.0  # 2026-02-25 06:13:20 UTC: a fixed, known instant
    follow_trio: bool = False
    _offset: float = 0.0

    def __call__(self) -> float:
        base = self.epoch + self._offset
        return base + trio.current_time() if self.follow_trio else base

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._offset += seconds
