"""Crashes around the submit: what was in flight counts against caps, restart after restart."""

from __future__ import annotations

import pytest
from conftest import request

CAP2 = {"caps": {"sms_day": {"channel": "sms", "limit": 2, "window": "day", "scope": "channel"}}}
MONDAY_10H = 1795399200.0  # 2026-11-23 10:00 in Shanghai


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("resend", [False, True])
async def test_a_lost_submit_answer_counts_after_two_quick_restarts(open_stack, resend) -> None:
    """kill -9 mid-send, restart, kill right after recovery, restart past the timeout: cap holds."""
    clock = FakeClock(MONDAY_10H)
    async with open_stack(CAP2, clock=clock, run_scheduler=False) as s:
        decision = await s.allow("a")
        await s.outbox.enqueue(decision)
        queue = await s.outbox.open_queue("sms").__aenter__()  # never exited: the crash
        await queue.take(1)
        assert await queue.mark_sending(["a"]) == {"a"}  # on the wire when the process dies
    # restart: recovery finds "a" sending; killed right after READY (no scheduler tick ran)
    async with open_stack(CAP2, clock=clock, run_scheduler=False, resend_unknown=resend) as s:
        assert (await s.outbox.counts("sms")) == {"queued" if resend else "unknown": 1}
    clock.advance(3600)  # far past reservation_timeout (10 min)
    async with open_stack(CAP2, clock=clock, run_scheduler=False, resend_unknown=resend) as s:
        await s.control.sweep()
        outcomes = [(await s.control.decide(request())).outcome for _ in range(2)]
        assert outcomes == ["allowed", "suppressed"]  # "a" may have reached him: it counts
