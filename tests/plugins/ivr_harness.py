"""Test harness for the IVR channel: a real Gateway object with the real SQLite contact control
and outbox (opened through their default plugins' store hooks, as the daemon opens them), the
presence tracker, the IVR channel, and the fake AMI or event-socket server over loopback TCP.

Everything runs on one clock: a :class:`~gateway.testing.FakeClock` following Trio's clock
(pair with ``autojump_clock``), given to the channel, the outbox and contact control, so that
retries due in minutes or tomorrow happen without real waiting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import trio
import trio.testing

from gateway.app import Gateway
from gateway.contact import plugin as contact_plugin
from gateway.contact.config import parse_contact_config
from gateway.contact.ledger import Ledger
from gateway.model import ContactRequest, EventKind, Outcome
from gateway.outbox import OutboxConfig
from gateway.outbox import plugin as outbox_plugin
from gateway.presence import PresenceTracker
from gateway.testing import FakeClock
from gateway.testing.ami import open_fake_ami
from gateway.testing.esl import open_fake_esl
from gateway.testing.pbx import FakePbx
from plugins.ivr.channel import IvrChannel
from plugins.ivr.config import parse_ivr_config

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def slow_autojump_clock() -> trio.testing.MockClock:
    """Trio's MockClock that jumps only after 10 ms of real idleness: SQLite's writer thread
    finishes first, so virtual time does not run on while the database works."""
    return trio.testing.MockClock(autojump_threshold=0.01)


def local_epoch(day: str = "2026-03-02", at: str = "10:00") -> float:
    """Unix time of a local (Shanghai) date and time: where the fake clock starts."""
    return dt.datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=TZ).timestamp()


def local_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, TZ).strftime("%Y-%m-%d %H:%M")


@attrs.define
class Observed:
    deliveries: list = attrs.field(factory=list)
    acceptances: list = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)

    def gateway_delivery_report(self, delivery):
        self.deliveries.append(delivery)
        self.changed.set()

    def gateway_offer_accepted(self, acceptance):
        self.acceptances.append(acceptance)

    def gateway_contact_recorded(self, decision):
        pass

    def states(self, contact_id: str) -> list[str]:
        return [d.state.value for d in self.deliveries if d.contact_id == contact_id]

    def final(self) -> dict[str, str]:
        return {d.contact_id: d.state.value for d in self.deliveries if d.state.final}


@attrs.define
class Ivr:
    gateway: Gateway
    channel: IvrChannel
    pbx: FakePbx
    server: Any
    observed: Observed
    clock: FakeClock

    async def send(
        self, *msisdns: str, campaign: str = "offer", text: str = "press 1", channel: str = "ivr"
    ) -> list:
        """Decide each contact through contact control and queue the allowed ones."""
        requests = [
            ContactRequest(
                contact_id=f"{campaign}-{m}",
                msisdn=m,
                campaign_id=campaign,
                channel=channel,
                content={"text": text},
                created_at=self.clock(),
            )
            for m in msisdns
        ]
        decisions = await self.gateway.contact_control.decide_many(requests)
        allowed = [d for d in decisions if d.outcome is Outcome.ALLOWED]
        assert len(allowed) == len(requests), [(d.outcome, d.reason) for d in decisions]
        await self.gateway.outbox.enqueue_many(allowed)
        return decisions

    def signal(self, msisdn: str, kind: EventKind, at: float | None = None) -> None:
        """What the pipeline does for every event: feed the presence tracker."""
        self.gateway.presence.observe(msisdn, kind, self.clock() if at is None else at)

    async def ledger_events(self, contact_id: str) -> list[str]:
        rows = await self.gateway.ledger.query(contact_id=contact_id, limit=100)
        return [row["event"] for row in reversed(rows)]

    async def wait_final(self, *contact_ids: str, within: float = 10 * 86400) -> None:
        with trio.fail_after(within):
            while not all(c in self.observed.final() for c in contact_ids):
                self.observed.changed = trio.Event()
                await self.observed.changed.wait()


#: A timer always this near: while SQLite's thread works past the autojump threshold, the
#: clock jumps to the next timer; this one bounds such a jump (times are asserted within it).
HEARTBEAT = 120.0


async def _heartbeat() -> None:
    while True:  # noqa: ASYNC110 (a timer that must exist, not a poll)
        await trio.sleep(HEARTBEAT)


@contextlib.asynccontextmanager
async def running_ivr(
    state_dir: Path,
    backend: str,
    *,
    clock: FakeClock,
    ivr: dict | None = None,
    contact: dict | None = None,
    pbx: FakePbx | None = None,
    start: bool = True,
    scheduler: bool = False,
) -> AsyncIterator[Ivr]:
    """``scheduler``: run the outbox scheduler (deferred contacts presented again); off by
    default, so that a virtual day is not thousands of scheduler ticks."""
    observed = Observed()
    # Under autojump the virtual clock also moves while SQLite's writer thread works, so
    # the timeouts that are not the subject of these tests are long.
    ocfg = OutboxConfig(
        scheduler_interval=5.0 if scheduler else 60.0, retry_backoff=1.0, retry_backoff_max=10.0,
        expiry=30 * 86400.0, lease=86400.0,
    )  # fmt: skip
    ccfg = parse_contact_config(
        {"timezone": "Asia/Shanghai", "synchronous": "normal", "reservation_timeout": "30d",
         "sweep_interval": "1d",
         **(contact or {})}
    )  # fmt: skip
    config = SimpleNamespace(
        sections={"outbox": ocfg, "contact": ccfg},
        plugins={},
        gateway=SimpleNamespace(sqlite_synchronous="normal", timezone="Asia/Shanghai"),
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    # The ledger's lookup-table indexer polls every (virtual) second: a night between contact
    # hours would be 46,800 polls at the autojump threshold each. Queries by contact_id, the
    # only ones here, scan the table and do not need it.
    stack = contextlib.ExitStack()
    defaults = Ledger.serve_indexer.__kwdefaults__
    stack.callback(defaults.__setitem__, "interval", defaults["interval"])
    defaults["interval"] = 3600.0
    gw = Gateway(config=config, hook=observed, state_dir=state_dir)  # type: ignore[arg-type]
    gw.presence = PresenceTracker()
    pbx = pbx or FakePbx()
    opener = open_fake_ami if backend == "ami" else open_fake_esl
    with stack:
        async with trio.open_nursery() as beat:
            # First: the stores start timers a day away (the sweeper), and a jump while they
            # open would skip that far.
            beat.start_soon(_heartbeat)
            async with _running(
                gw, opener, pbx, backend, clock, ivr, observed, start, scheduler
            ) as h:
                yield h
            beat.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _running(gw, opener, pbx, backend, clock, ivr, observed, start, scheduler):
    async with opener(pbx) as (server, port), contextlib.AsyncExitStack() as stores:
        for plugin in (contact_plugin, outbox_plugin):
            for store in plugin.gateway_stores(gateway=gw):
                await stores.enter_async_context(store)
        gw.outbox.clock = clock
        gw.contact_control.clock = clock
        table = {
            "backend": backend,
            "host": "127.0.0.1",
            "port": port,
            "secret": "secret" if backend == "ami" else "ClueCon",
            "contact_hours": "09:00-20:00",
            "reconnect_initial": "0.1s",
            "reconnect_max": "1s",
            **(ivr or {}),
        }
        channel = IvrChannel(gw, parse_ivr_config(table), clock=clock)
        gw.channels[channel.name] = channel
        async with trio.open_nursery() as nursery:
            if scheduler:
                for service in outbox_plugin.gateway_services(gateway=gw):
                    await nursery.start(service.run)
            if start:
                await nursery.start(channel.run)
            yield Ivr(gateway=gw, channel=channel, pbx=pbx, server=server, observed=observed,
                      clock=clock)  # fmt: skip
            nursery.cancel_scope.cancel()
