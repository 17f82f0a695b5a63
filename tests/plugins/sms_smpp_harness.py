"""Test harness: a real Gateway object with the outbox, a fake contact control, the SMS channel
and the SMSC simulator, all in one Trio run, talking SMPP over loopback TCP."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import trio

from adapters.smpp.simulator import SimulatorConfig, SmscSimulator
from gateway.app import Gateway
from gateway.outbox import OutboxConfig, open_outbox
from plugins.sms_smpp.channel import SmsChannel
from plugins.sms_smpp.config import parse_sms_config
from tests.fakes.fake_contact_control import FakeContactControl


@attrs.define
class Observed:
    deliveries: list = attrs.field(factory=list)
    mo: list = attrs.field(factory=list)

    def gateway_delivery_report(self, delivery):
        self.deliveries.append(delivery)

    def gateway_mo_message(self, message):
        self.mo.append(message)

    def final(self) -> dict[str, str]:
        return {d.contact_id: d.state.value for d in self.deliveries if d.state.final}


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


@contextlib.asynccontextmanager
async def running_channel(
    state_dir: Path,
    smsc_tables: list[dict],
    *,
    outbox_config: OutboxConfig | None = None,
    extra: dict | None = None,
):
    observed = Observed()
    gw = Gateway(
        config=SimpleNamespace(sections={}, plugins={}), hook=observed, state_dir=state_dir
    )
    gw.contact_control = FakeContactControl()
    config = parse_sms_config({"smsc": smsc_tables, **(extra or {})})
    ocfg = outbox_config or OutboxConfig(
        scheduler_interval=0.05, retry_backoff=0.05, retry_backoff_max=0.2
    )
    async with open_outbox(
        state_dir / "gateway.sqlite", ocfg, gateway=gw, synchronous="normal"
    ) as outbox:
        gw.outbox = outbox
        channel = SmsChannel(gw, config)
        async with trio.open_nursery() as nursery:
            await nursery.start(channel.run)
            yield SimpleNamespace(
                gateway=gw,
                outbox=outbox,
                channel=channel,
                observed=observed,
                control=gw.contact_control,
                nursery=nursery,
            )
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def running_simulator(**config: Any):
    sim = SmscSimulator(SimulatorConfig(**config))
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        yield sim
        nursery.cancel_scope.cancel()


async def wait_for(predicate, limit: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true (the peers run on their own timers)."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)
