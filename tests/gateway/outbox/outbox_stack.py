"""Helpers: the outbox as the daemon runs it: the real SQLite contact control, sharing one writer
(or the real Redis backend when ``table`` says ``backend = "redis"``).

``open_stack(table, **outbox)`` opens contact control (``table`` is its ``[contact]`` section)
and the outbox on one state database and one :class:`~gateway.store.StateWriter`, wired
through a real :class:`~gateway.app.Gateway` (its ``report_delivery`` commits and reconciles).
Requests are decided by that control: nothing here allows everything.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs

from gateway.app import Gateway
from gateway.contact.config import parse_contact_config
from gateway.contact.redis_backend import open_redis_contact_control
from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.model import ContactRequest
from gateway.outbox import OutboxConfig, open_outbox

_ids = itertools.count()


class RecordingHook:
    """The observer hooks a Gateway calls; delivery reports are kept for the test."""

    def __init__(self) -> None:
        self.reported: list[Any] = []

    def gateway_delivery_report(self, delivery: Any) -> None:
        self.reported.append(delivery)

    def gateway_contact_recorded(self, decision: Any) -> None:
        pass


@attrs.define
class Stack:
    gateway: Gateway
    control: Any
    outbox: Any
    hook: RecordingHook

    @property
    def reported(self) -> list[Any]:
        return self.hook.reported

    async def allow(self, contact_id: str | None = None, **kw: Any) -> Any:
        """A request decided by the real control; asserts it was allowed."""
        decision = await self.control.decide(request(contact_id, **kw))
        assert decision.outcome == "allowed", decision
        return decision


def request(
    contact_id: str | None = None,
    msisdn: str = "8613800000000",
    *,
    channel: str = "sms",
    campaign_id: str = "c1",
    text: str = "hello",
    priority: int = 0,
    **content: Any,
) -> ContactRequest:
    return ContactRequest(
        contact_id=contact_id if contact_id is not None else f"r{next(_ids)}",
        msisdn=msisdn,
        campaign_id=campaign_id,
        channel=channel,
        priority=priority,
        content={"text": text, **content},
        created_at=time.time(),
    )


def cfg(**kw: Any) -> OutboxConfig:
    return OutboxConfig(scheduler_interval=0.05, retry_backoff=0.01, retry_backoff_max=0.05, **kw)


@asynccontextmanager
async def open_stack(
    tmp_path: Any,
    table: dict[str, Any] | None = None,
    *,
    db: Any = None,
    clock: Callable[[], float] = time.time,
    run_scheduler: bool = True,
    config: Any = None,
    **outbox_kw: Any,
) -> AsyncIterator[Stack]:
    path = Path(db) if db is not None else tmp_path / "gateway.sqlite"
    tmp_path = path.parent
    hook = RecordingHook()
    gw = Gateway(config=None, hook=hook, state_dir=tmp_path)

    async def preempt(contact_id: str) -> bool:
        return gw.outbox is not None and bool(await gw.outbox.cancel(contact_id, "preempted"))

    contact = parse_contact_config(table or {})
    opener = (
        open_redis_contact_control if contact.backend == "redis" else open_sqlite_contact_control
    )
    async with opener(contact, path, clock=clock, preemptor=preempt) as cc:
        gw.contact_control, gw.ledger = cc, cc.ledger
        async with open_outbox(
            path,
            config or cfg(**outbox_kw),
            gateway=gw,
            clock=clock,
            run_scheduler=run_scheduler,
            writer=cc.ledger.writer,
            ledger=cc.ledger,
        ) as ob:
            gw.outbox = ob
            yield Stack(gateway=gw, control=cc, outbox=ob, hook=hook)
            gw.outbox = None
