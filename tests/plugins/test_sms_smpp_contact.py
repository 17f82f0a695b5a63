"""The SMS channel's final states as the real SQLite contact control counts them: a message whose
receipt never came (unknown) keeps counting against a cap; one the SMSC's full queue refused
(rejected after its retries) is refunded."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import trio

from adapters.smpp.simulator import SimulatorConfig, SmscSimulator
from gateway.app import Gateway
from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.model import ContactRequest, Outcome
from gateway.outbox import OutboxConfig, open_outbox
from plugins.sms_smpp.channel import SmsChannel
from plugins.sms_smpp.config import parse_sms_config
from tests.plugins.sms_smpp_harness import Observed, smsc_table, wait_for

MSISDN = "8613900000001"


@contextlib.asynccontextmanager
async def gateway_with_real_control(tmp_path, sim_config: dict, smsc_over: dict):
    """Simulator, real SQLite contact control (one SMS per subscriber per hour), outbox, channel."""
    observed = Observed()
    gw = Gateway(config=SimpleNamespace(sections={}, plugins={}), hook=observed, state_dir=tmp_path)
    contact = parse_contact_config(
        {"caps": {"sms_hour": {"scope": "channel", "window": "1h", "limit": 1}}}
    )
    sim = SmscSimulator(SimulatorConfig(**sim_config))
    async with (
        trio.open_nursery() as nursery,
        open_sqlite_contact_control(contact, tmp_path / "gateway.sqlite") as control,
        open_outbox(
            tmp_path / "gateway.sqlite",
            OutboxConfig(scheduler_interval=0.05),
            gateway=gw,
            synchronous="normal",
        ) as outbox,
    ):
        await nursery.start(sim.serve)
        gw.contact_control, gw.outbox = control, outbox
        channel = SmsChannel(gw, parse_sms_config({"smsc": [smsc_table(sim.port, **smsc_over)]}))
        await nursery.start(channel.run)
        yield SimpleNamespace(sim=sim, control=control, outbox=outbox, observed=observed)
        nursery.cancel_scope.cancel()


def request(contact_id: str) -> ContactRequest:
    return ContactRequest(
        contact_id=contact_id,
        msisdn=MSISDN,
        campaign_id="c1",
        channel="sms",
        content={"text": "hello"},
    )


async def test_unknown_after_receipt_timeout_keeps_counting_against_the_cap(tmp_path):
    """A message reported unknown (no receipt in time) is committed: the next one is capped."""
    async with gateway_with_real_control(
        tmp_path, {"receipt_delay": None}, {"receipt_timeout": "0.3s"}
    ) as g:
        first = await g.control.decide(request("a1"))
        assert first.outcome == Outcome.ALLOWED
        await g.outbox.enqueue(first)
        await wait_for(lambda: g.observed.final().get("a1") == "unknown")
        second = await g.control.decide(request("a2"))
        assert second.outcome != Outcome.ALLOWED
        assert len(g.sim.submitted) == 1


async def test_queue_full_rejection_is_refunded(tmp_path):
    """A message refused for a full destination queue (after its retries) is refunded: the
    subscriber may be contacted again."""
    async with gateway_with_real_control(
        tmp_path,
        {"queue_full": {MSISDN: 3}, "receipt_delay": 0.02},
        {"queue_full_retries": 2, "queue_full_delay": "0.1s"},
    ) as g:
        first = await g.control.decide(request("b1"))
        await g.outbox.enqueue(first)
        await wait_for(lambda: g.observed.final().get("b1") == "rejected")
        second = await g.control.decide(request("b2"))
        assert second.outcome == Outcome.ALLOWED
        await g.outbox.enqueue(second)
        await wait_for(lambda: g.observed.final().get("b2") == "delivered")
        assert g.sim.stats["queue_full"] == 3 and len(g.sim.submitted) == 1
