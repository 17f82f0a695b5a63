"""Subscriber status from the BOSS before a contact (``boss_status`` trigger condition): the
pipeline never waits for the BOSS; answers are cached; a suspended subscriber is not contacted."""

from __future__ import annotations

import time

from gateway.model import EventKind, SignalEvent
from gateway.testing import open_gateway, open_smsc_simulator, reserved_port, wait_until
from gateway.testing.boss import open_fake_boss
from plugins.boss_orders import RUNNING
from tests.plugins.boss_harness import SMSC, SOAP_ORDER

A, B = "8613800000001", "8613800000002"

CAMPAIGN = """
id = "care"
name = "care offer"
channels = ["sms"]
initial_state = "running"

[content.sms]
text = "Welcome back"

[trigger]
events = ["power_on"]

[[trigger.conditions]]
type = "boss_status"
status = ["active"]
arrears = false
"""


def power_on(msisdn: str, n: int) -> SignalEvent:
    return SignalEvent(
        kind=EventKind.POWER_ON,
        timestamp=time.time() + n,
        msisdn=msisdn,
        imsi=f"46000{msisdn[-6:]}",
    )


async def test_status_is_looked_up_off_the_hot_path_and_cached(tmp_path):
    """The first event of a subscriber queues a status lookup and contacts nobody; later
    events use the cached answer: the active subscriber is contacted, the suspended one and
    the one in arrears are not, and the BOSS is asked once per subscriber."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "care.toml").write_text(CAMPAIGN)
    owed = "8613800000003"
    async with open_fake_boss("soap") as boss, open_smsc_simulator(receipt_delay=0.01) as smsc:
        boss.subscribers[A] = {"status": "active", "brand": "gotone", "arrears": "false"}
        boss.subscribers[B] = {"status": "suspended", "brand": "gotone", "arrears": "false"}
        boss.subscribers[owed] = {"status": "active", "brand": "gotone", "arrears": "true"}
        config = SOAP_ORDER.format(port=boss.port) + SMSC.format(port=smsc.port)
        config += f'\n[campaigns]\ndirectory = "{campaigns}"\n'
        async with open_gateway(tmp_path / "gw", config) as gw:
            pipeline = gw.gateway.pipeline
            await pipeline.send([power_on(A, 0), power_on(B, 0), power_on(owed, 0)])
            cache = RUNNING.service.status_cache
            await wait_until(lambda: len(cache) == 3)
            assert smsc.texts() == []  # nobody contacted on a cache miss
            await pipeline.send([power_on(A, 1), power_on(B, 1), power_on(owed, 1)])
            await wait_until(lambda: smsc.texts() == ["Welcome back"])
            await pipeline.send([power_on(B, 2)])
            assert boss.status_queries == 3


async def test_boss_down_does_not_stall_the_pipeline(tmp_path):
    """With the BOSS refusing connections, events keep flowing (no contact, nothing waits)."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "care.toml").write_text(CAMPAIGN)
    with reserved_port() as port:  # refused: the BOSS is down
        async with open_smsc_simulator(receipt_delay=0.01) as smsc:
            config = SOAP_ORDER.format(port=port) + SMSC.format(port=smsc.port)
            config += f'\n[campaigns]\ndirectory = "{campaigns}"\n'
            async with open_gateway(tmp_path / "gw", config) as gw:
                started = time.monotonic()
                for n in range(50):
                    await gw.gateway.pipeline.send([power_on(A, n)])
                assert time.monotonic() - started < 5
                client = RUNNING.service.client
                await wait_until(lambda: client.failures >= 1)
                assert smsc.texts() == []


async def test_campaign_asking_for_status_without_a_status_operation_is_reported(tmp_path):
    """A campaign with a boss_status condition while no status lookup is configured is named
    in a boss.status_not_configured error at start (it would otherwise contact nobody)."""
    import structlog

    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "care.toml").write_text(CAMPAIGN)
    config = f'[campaigns]\ndirectory = "{campaigns}"\n'
    with structlog.testing.capture_logs() as logs:
        async with open_gateway(tmp_path / "gw", config):
            pass
    (entry,) = [e for e in logs if e["event"] == "boss.status_not_configured"]
    assert entry["campaigns"] == ["care"]
