"""Crashes around the submit: what was in flight counts against caps, restart after restart."""

from __future__ import annotations

import pytest
from outbox_stack import request

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


async def test_start_up_survives_a_full_disk_and_recovers_later(
    open_stack, tmp_path, monkeypatch, captured_logs
) -> None:
    """Recovery failing at start (ENOSPC) is logged with the path; the scheduler retries it."""
    from gateway.outbox import store

    async with open_stack(CAP2, run_scheduler=False) as s:
        await s.outbox.enqueue(await s.allow("a"))
        queue = await s.outbox.open_queue("sms").__aenter__()
        await queue.take(1)
        await queue.mark_sending(["a"])
    real, calls = store.recover, []

    def full_once(conn, *args):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(conn, *args)

    monkeypatch.setattr(store, "recover", full_once)
    async with open_stack(CAP2, run_scheduler=False) as s:  # starts: no crash loop
        failed = [r for r in captured_logs.records() if r["event"] == "outbox.recover_failed"]
        assert failed and failed[0]["path"].endswith("gateway.sqlite")
        assert "No space left" in failed[0]["error"]
        assert (await s.outbox.counts("sms")) == {"sending": 1}
        await s.outbox.tick()  # space is back
        assert (await s.outbox.counts("sms")) == {"unknown": 1}
        assert (await s.control.current_contacts("8613800000000"))[0]["state"] == "committed"
