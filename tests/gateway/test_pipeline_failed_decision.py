"""A decision that fails (Redis down) leaves the trigger policy as if the event never matched."""

from __future__ import annotations

from gateway.contact.config import parse_contact_config
from gateway.contact.redis_backend import open_redis_contact_control
from gateway.model import EventKind, Outcome, SignalEvent
from tests.fakes.campaign_fakes import campaign_toml, make_pipeline
from tests.fakes.redis_server import RedisServer

T0 = 1_772_000_000.0
IMSI = "460001234567801"
ONCE_A_DAY = '[policy]\nonce_per = "1d"\n[trigger]\nevents = ["power_on"]\n'


def power_on(ts: float) -> SignalEvent:
    return SignalEvent(kind=EventKind.POWER_ON, timestamp=ts, imsi=IMSI)


async def test_failed_decision_rolls_back_once_per_state(tmp_path) -> None:
    """With Redis down the event is dropped unmarked: the next event in the period triggers again."""
    server = RedisServer().start()
    try:
        config = parse_contact_config({"backend": "redis", "redis": f"127.0.0.1:{server.port}"})
        async with open_redis_contact_control(config, tmp_path / "ledger.sqlite") as cc:
            p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(ONCE_A_DAY)}, control=cc)
            port = server.port
            server.stop()
            await p.send([power_on(T0)])
            assert p.gateway.metrics.counter("pipeline.decide_failed").value == 1
            assert not p.gateway.outbox.queued
            server.start(port=port)
            await p.send([power_on(T0 + 600)])  # same policy period
            assert [d.outcome for d in p.gateway.outbox.queued.values()] == [Outcome.ALLOWED]
            assert p.campaigns.counts["c1"].get("repeat", 0) == 0
            # the successful decision did mark the policy: a third event is a repeat
            await p.send([power_on(T0 + 1200)])
            assert p.campaigns.counts["c1"]["repeat"] == 1
            assert len(p.gateway.outbox.queued) == 1
    finally:
        server.stop()


async def test_rollback_keeps_a_mark_made_since(tmp_path) -> None:
    """Only the mark the failed request made is undone; the earlier period's mark is restored."""
    server = RedisServer().start()
    try:
        config = parse_contact_config({"backend": "redis", "redis": f"127.0.0.1:{server.port}"})
        async with open_redis_contact_control(config, tmp_path / "ledger.sqlite") as cc:
            p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(ONCE_A_DAY)}, control=cc)
            await p.send([power_on(T0)])  # decided: marked at T0
            assert len(p.gateway.outbox.queued) == 1
            port = server.port
            server.stop()
            await p.send([power_on(T0 + 86400 + 1)])  # next period, decision fails
            server.start(port=port)
            # the next period is still open, the first one still closed
            await p.send([power_on(T0 + 600)])
            assert p.campaigns.counts["c1"]["repeat"] == 1
            await p.send([power_on(T0 + 86400 + 60)])
            assert len(p.gateway.outbox.queued) == 2
    finally:
        server.stop()
