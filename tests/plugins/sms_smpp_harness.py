"""Test harness: a real Gateway object with the real SQLite contact control and the outbox
(opened through their default plugins' store hooks, as the daemon opens them), the SMS
channel and the SMSC simulator, all in one Trio run, talking SMPP over loopback TCP.

Messages reach the outbox the way the pipeline puts them there: contact control decides
(``h.decide``), and only ALLOWED decisions are queued (``h.send``). Caps and lists are those of
the ``contact`` config given to :func:`running_channel` (none by default).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import trio

from adapters.smpp.protocol import DeliverSm
from adapters.smpp.simulator import SimulatorConfig, SmscSimulator
from gateway.app import Gateway
from gateway.contact import plugin as contact_plugin
from gateway.contact.config import ContactConfig, parse_contact_config
from gateway.model import ContactDecision, ContactRequest, Outcome
from gateway.outbox import OutboxConfig
from gateway.outbox import plugin as outbox_plugin
from plugins.sms_smpp.channel import SmsChannel
from plugins.sms_smpp.config import parse_sms_config


def request(
    contact_id: str,
    msisdn: str = "8613800000000",
    *,
    channel: str = "sms",
    campaign_id: str = "c1",
    text: str = "hello",
    priority: int = 0,
    **content: Any,
) -> ContactRequest:
    """A contact request with ``content["text"]`` (plus any other content keys)."""
    return ContactRequest(
        contact_id=contact_id,
        msisdn=msisdn,
        campaign_id=campaign_id,
        channel=channel,
        priority=priority,
        content={"text": text, **content},
        created_at=time.time(),
    )


@attrs.define
class Observed:
    deliveries: list = attrs.field(factory=list)
    mo: list = attrs.field(factory=list)

    def gateway_delivery_report(self, delivery):
        self.deliveries.append(delivery)

    def gateway_mo_message(self, message):
        self.mo.append(message)

    def gateway_contact_recorded(self, decision):
        pass

    def final(self) -> dict[str, str]:
        return {d.contact_id: d.state.value for d in self.deliveries if d.state.final}


def deliver_sm(seq: int, text: bytes, **fields: Any) -> DeliverSm:
    """A deliver_sm as the bind hands it to the channel: an MO text from a subscriber unless
    ``fields`` say otherwise (a receipt: ``esm_class=0x04`` and its TLVs)."""
    return DeliverSm(
        **{
            "sequence": seq,
            "source_addr": "8613900000001",
            "destination_addr": "10086",
            "esm_class": 0,
            "data_coding": 0,
            "short_message": text,
            "message_payload": None,
            "receipted_message_id": None,
            "message_state": None,
            "sar": None,
            **fields,
        }
    )


def smsc_table(port: int, **over: Any) -> dict:
    table = {
        "name": "main",
        "host": "127.0.0.1",
        "port": port,
        "system_id": "gateway",
        "password": "secret",
        "window": 10,
        "enquire_link_interval": "5s",
        "request_timeout": "3s",
        "reconnect_min": "0.05s",
        "reconnect_max": "0.2s",
        "throttle_delay": "0.05s",
        "source_addr": "10086",
    }
    table.update(over)
    return table


@attrs.define
class Running:
    """What :func:`running_channel` hands out; ``control`` is the real SQLite contact control."""

    gateway: Gateway
    outbox: Any
    channel: SmsChannel
    observed: Observed
    control: Any
    nursery: trio.Nursery

    async def decide(self, requests: Sequence[ContactRequest]) -> list[ContactDecision]:
        """Contact control's decisions (reservations made and durable, as in the pipeline)."""
        return await self.control.decide_many(list(requests))

    async def send(self, *requests: ContactRequest) -> list[ContactDecision]:
        """Decide and queue the ALLOWED ones in one transaction, return every decision (the
        pipeline's path: ``decide_and_queue``)."""
        return await self.control.decide_and_queue(list(requests), self.outbox)

    async def send_allowed(self, *requests: ContactRequest) -> None:
        """Like :meth:`send`, and contact control must have allowed every one."""
        decisions = await self.send(*requests)
        refused = [
            (d.request.contact_id, d.outcome, d.reason)
            for d in decisions
            if d.outcome is not Outcome.ALLOWED
        ]
        assert not refused, refused

    async def ledger_events(self, contact_id: str) -> list[str]:
        """The contact's ledger events, oldest first (``allowed``, ``committed``, ...)."""
        rows = await self.control.ledger.query(contact_id=contact_id, limit=100)
        return [row["event"] for row in reversed(rows)]


@contextlib.asynccontextmanager
async def running_channel(
    state_dir: Path,
    smsc_tables: list[dict],
    *,
    outbox_config: OutboxConfig | None = None,
    extra: dict | None = None,
    contact: dict | None = None,
):
    """The channel on a real gateway: ``contact`` is a ``[contact]`` table (caps, lists...)."""
    observed = Observed()
    ocfg = outbox_config or OutboxConfig(
        scheduler_interval=0.05, retry_backoff=0.05, retry_backoff_max=0.2
    )
    ccfg: ContactConfig = parse_contact_config(
        {"timezone": "Asia/Shanghai", "synchronous": "normal", **(contact or {})}
    )
    config = SimpleNamespace(
        sections={"outbox": ocfg, "contact": ccfg},
        plugins={},
        gateway=SimpleNamespace(sqlite_synchronous="normal", timezone="Asia/Shanghai"),
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    gw = Gateway(config=config, hook=observed, state_dir=state_dir)
    sms = parse_sms_config({"smsc": smsc_tables, **(extra or {})})
    async with contextlib.AsyncExitStack() as stores:
        for plugin in (contact_plugin, outbox_plugin):  # the daemon's order
            for store in plugin.gateway_stores(gateway=gw):
                await stores.enter_async_context(store)
        channel = SmsChannel(gw, sms)
        async with trio.open_nursery() as nursery:
            for service in outbox_plugin.gateway_services(gateway=gw):
                await nursery.start(service.run)
            await nursery.start(channel.run)
            yield Running(
                gateway=gw,
                outbox=gw.outbox,
                channel=channel,
                observed=observed,
                control=gw.contact_control,
                nursery=nursery,
            )
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def running_simulator(*, port: int = 0, **config: Any):
    """The SMSC simulator on loopback (``port`` 0: any free port, in ``sim.port``)."""
    sim = SmscSimulator(SimulatorConfig(**config))
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve, "127.0.0.1", port)
        yield sim
        nursery.cancel_scope.cancel()


async def wait_for(predicate, limit: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true (the peers run on their own timers)."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)
