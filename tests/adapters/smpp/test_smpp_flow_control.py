"""The SMSC's flow control against the simulator over real TCP, on Trio's MockClock:
ESME_RTHROTTLED lowers the account's rate (AIMD); ESME_RMSGQFUL retries one destination, bounded."""

from __future__ import annotations

import trio

from adapters.smpp import protocol as p
from adapters.smpp.simulator import SimulatorConfig
from tests.adapters.smpp.smpp_client_helpers import job, simulator_and_account, wait_for


async def _feed(account, n: int) -> None:
    for i in range(n):
        await account.submit(job(i))


async def test_throttled_client_settles_near_the_smsc_rate(autojump_clock):
    """Against an SMSC allowing 5/s, an uncapped client settles near 5/s and few submits are rejected."""
    cfg = SimulatorConfig(receipt_delay=None, max_rate=5)
    async with simulator_and_account(cfg, window=10) as (sim, account, h, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_feed, account, 1000)
            await trio.sleep(60)
            accepted_60 = len(sim.submitted)
            throttled_60 = sim.stats["throttled"]
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
        accepted = len(sim.submitted) - accepted_60
        throttled = sim.stats["throttled"] - throttled_60
        rejection = throttled / (accepted + throttled)
        # steady state (second minute): near the SMSC's 5/s and hardly any rejections
        assert 4.0 <= accepted / 60 <= 5.0, accepted
        assert rejection < 0.05, (accepted, throttled)
        # over the whole run too, the start included
        total = sim.stats["throttled"] / sim.stats["submit_sm"]
        assert total < 0.08, total
        assert account.effective_rate <= 6.0
        assert all(j.status is None for j in h.results)


async def test_throttling_is_bounded_by_the_configured_rate(autojump_clock):
    """After throttling ends, the additive increase stops at the configured rate, never above it."""
    cfg = SimulatorConfig(receipt_delay=None, max_rate=5)
    async with simulator_and_account(cfg, window=10, rate=8.0) as (sim, account, _h, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_feed, account, 5000)
            await wait_for(lambda: sim.stats["throttled"] > 0, limit=30)
            assert account.effective_rate < 8.0
            sim.config.max_rate = 0  # the SMSC lifts its limit
            await trio.sleep(120)
            assert account.adaptive_rate is None and account.effective_rate == 8.0
            before = len(sim.submitted)
            await trio.sleep(10)
            assert 75 <= len(sim.submitted) - before <= 81
            nursery.cancel_scope.cancel()


async def test_queue_full_retries_one_destination_and_gives_up(autojump_clock):
    """ESME_RMSGQFUL for one destination: only its messages wait and retry (bounded), then fail;
    the others flow at once."""
    cfg = SimulatorConfig(receipt_delay=None, queue_full={"861380000000": -1})  # jobs 0-9: full
    settings = dict(queue_full_retries=2, queue_full_delay=10.0)
    async with simulator_and_account(cfg, window=10, **settings) as (sim, account, h, _):
        start = trio.current_time()
        for i in range(200):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 190, limit=5)
        assert trio.current_time() - start < 1.0  # no account-wide pause
        assert all(j.status is None for j in h.results)
        await wait_for(lambda: len(h.results) == 200, limit=60)
        failed = [j for j in h.results if j.status is not None]
        assert sorted(int(j.key) for j in failed) == list(range(10))
        assert all(j.status == p.ESME_RMSGQFUL and j.queue_full == 3 for j in failed)
        assert sim.stats["queue_full"] == 30  # one try and two retries each
        assert 20.0 <= trio.current_time() - start < 25.0
        assert "smpp.queue_full_retry" in h.names() and "smpp.throttled" not in h.names()


async def test_queue_full_that_clears_delivers_on_retry(autojump_clock):
    """A destination whose queue frees up gets its message through on a retry."""
    cfg = SimulatorConfig(receipt_delay=None, queue_full={"8613800000001": 1})
    async with simulator_and_account(cfg, queue_full_delay=5.0) as (sim, account, h, _):
        await account.submit(job(1))
        await wait_for(lambda: h.results, limit=30)
        assert h.results[0].status is None and h.results[0].queue_full == 1
        assert sim.stats["queue_full"] == 1 and len(sim.submitted) == 1


async def test_throttled_after_idle_starts_from_the_recent_rate(autojump_clock):
    """An uncapped account idle for an hour, then throttled, starts from what the SMSC took just
    now, not from an hour's average (which would crawl at 1/s)."""
    cfg = SimulatorConfig(receipt_delay=None, max_rate=50)
    async with simulator_and_account(cfg, window=10) as (sim, account, h, _):
        await account.submit(job(0))
        await wait_for(lambda: h.results)
        await trio.sleep(3600)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_feed, account, 5000)
            await wait_for(lambda: sim.stats["throttled"] > 0, limit=30)
            assert account.effective_rate >= 20
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
        assert len(sim.submitted) >= 30 * 35
