"""Serial multichannel ("串行营销") for batch campaigns with a ``[fallback]`` table.

A batch sends on the first of its ``channels``. Each allowed contact that has a next channel is
remembered (``batch_fallback`` in the state database, written with the next commit): when its
delivery ends in one of the policy's failure states, or when ``after`` passes without an answer
from the subscriber (an ``accepted``, ``declined`` or ``opted_out`` ledger event for the
campaign), the next channel is tried, through contact control like every contact
(``decide_and_queue``), under the contact id ``fbSTEP-CAMPAIGN-MSISDN``. A delivered contact
without ``after`` needs nothing more and is forgotten.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from gateway.campaigns.manual import render
from gateway.campaigns.model import CampaignDef
from gateway.model import CampaignState, ContactDecision, ContactRequest, Delivery, Outcome
from gateway.sqlite_base import rows_in_chunks
from gateway.store import StateWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_fallback (
    contact_id TEXT PRIMARY KEY,
    msisdn TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    decided_at REAL NOT NULL,
    due_at REAL NOT NULL
) WITHOUT ROWID;
"""
_INSERT = "INSERT OR REPLACE INTO batch_fallback VALUES (?,?,?,?,?,?)"
_DUE = "UPDATE batch_fallback SET due_at = ? WHERE contact_id = ?"
_DELETE = "DELETE FROM batch_fallback WHERE contact_id = ?"
_ANSWERS = ("accepted", "declined", "opted_out")
_ACTIVE = (CampaignState.RUNNING, CampaignState.FINISHED)


def step_of(contact_id: str) -> int:
    """0 for a batch contact (``bt-``), N for the N-th fallback (``fbN-``)."""
    if contact_id.startswith("fb"):
        head = contact_id[2 : contact_id.index("-")]
        return int(head) if head.isdigit() else 0
    return 0


@attrs.define
class Pending:
    msisdn: str
    campaign_id: str
    step: int
    decided_at: float
    due_at: float


@attrs.define(eq=False)
class Fallback:
    """Pending fallbacks of one gateway, and the ``Service`` that tries the next channels."""

    gateway: Any
    clock: Callable[[], float] = time.time
    interval: float = 1.0
    name: str = "batch-fallback"
    writer: StateWriter | None = None
    pending: dict[str, Pending] = attrs.field(factory=dict)
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(("waiting", "tried", "answered", "not_needed"), 0)
    )
    _wakeup: trio.Event = attrs.field(factory=trio.Event)

    async def open(self, writer: StateWriter) -> None:
        self.writer = writer
        await writer.setup(lambda c: c.executescript(SCHEMA))
        rows = await writer.setup(lambda c: c.execute("SELECT * FROM batch_fallback").fetchall())
        for cid, msisdn, campaign_id, step, decided_at, due_at in rows:
            self.pending[cid] = Pending(msisdn, campaign_id, step, decided_at, due_at)

    def _policy_of(self, campaign_id: str) -> CampaignDef | None:
        campaigns = self.gateway.campaigns
        cdef: CampaignDef | None = campaigns.get(campaign_id) if campaigns is not None else None
        return cdef if cdef is not None and cdef.fallback is not None else None

    # -- observers (no await) ---------------------------------------------------------------

    def record(self, decision: ContactDecision) -> None:
        if decision.outcome is not Outcome.ALLOWED or decision.reason == "duplicate":
            return
        r = decision.request
        cdef = self._policy_of(r.campaign_id)
        if cdef is None or self.writer is None or cdef.fallback is None:
            return
        step = step_of(r.contact_id)
        if step + 1 >= len(cdef.campaign.channels):
            return
        after = cdef.fallback.after
        due = decision.decided_at + after if after is not None else math.inf
        self.pending[r.contact_id] = Pending(
            r.msisdn, r.campaign_id, step, decision.decided_at, due
        )
        self.writer.append(
            _INSERT, [(r.contact_id, r.msisdn, r.campaign_id, step, decision.decided_at, due)]
        )
        self.stats["waiting"] += 1

    def delivery(self, delivery: Delivery) -> None:
        entry = self.pending.get(delivery.contact_id)
        if entry is None or self.writer is None:
            return
        cdef = self._policy_of(entry.campaign_id)
        if cdef is None or cdef.fallback is None:
            return
        state = delivery.state.value
        if state in cdef.fallback.on:
            entry.due_at = 0.0
            self.writer.append(_DUE, [(0.0, delivery.contact_id)])
            self._wakeup.set()
        elif state == "delivered" and cdef.fallback.after is None:
            del self.pending[delivery.contact_id]
            self.writer.append(_DELETE, [(delivery.contact_id,)])
            self.stats["not_needed"] += 1

    # -- the service ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        log = structlog.get_logger()
        while True:
            with trio.move_on_after(self.interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self.step()
            except Exception as exc:  # tried again at the next tick
                log.error("batch.fallback_failed", error=repr(exc))

    async def _answered(self, campaign_id: str, items: list[tuple[str, Pending]]) -> set[str]:
        ledger = self.gateway.ledger
        worker = getattr(ledger, "worker", None)
        if worker is None or not items:
            return set()
        since = min(p.decided_at for _, p in items)
        msisdns = sorted({p.msisdn for _, p in items})

        def read(conn: Any) -> set[str]:
            return {
                row[0]
                for row in rows_in_chunks(
                    conn,
                    "SELECT DISTINCT msisdn FROM contact_ledger WHERE campaign_id = ? AND at >= ?"
                    f" AND event IN ({','.join('?' * len(_ANSWERS))})"
                    " AND msisdn IN ({marks})",
                    msisdns,
                    (campaign_id, since, *_ANSWERS),
                )
            }

        result: set[str] = await worker.run(read)
        return result

    async def step(self) -> int:
        """Try the next channel for every due contact; how many were tried."""
        now = self.clock()
        control, outbox, writer = self.gateway.contact_control, self.gateway.outbox, self.writer
        if control is None or outbox is None or writer is None:
            return 0
        by_campaign: dict[str, list[tuple[str, Pending]]] = {}
        for contact_id, p in self.pending.items():
            if p.due_at <= now:
                by_campaign.setdefault(p.campaign_id, []).append((contact_id, p))
        tried = 0
        for campaign_id, items in by_campaign.items():
            cdef = self._policy_of(campaign_id)
            if cdef is None or cdef.campaign.state is CampaignState.CANCELLED:
                for contact_id, _ in items:  # nothing more to try
                    self.pending.pop(contact_id, None)
                    writer.append(_DELETE, [(contact_id,)])
                continue
            if cdef.campaign.state not in _ACTIVE:
                continue  # paused: later
            answered = await self._answered(campaign_id, items)
            requests = []
            for _contact_id, p in items:
                if p.msisdn in answered:
                    self.stats["answered"] += 1
                    continue
                channel = cdef.campaign.channels[p.step + 1]
                requests.append(
                    ContactRequest(
                        contact_id=f"fb{p.step + 1}-{campaign_id}-{p.msisdn}",
                        msisdn=p.msisdn,
                        campaign_id=campaign_id,
                        channel=channel,
                        campaign_class=cdef.campaign.campaign_class,
                        priority=cdef.campaign.priority,
                        realtime=False,
                        content=render(cdef, channel, p.msisdn, self.gateway.profiles),
                        created_at=now,
                        trigger="fallback",
                    )
                )
            for i in range(0, len(requests), 5000):
                await control.decide_and_queue(requests[i : i + 5000], outbox)
            tried += len(requests)
            self.stats["tried"] += len(requests)
            for contact_id, _ in items:
                self.pending.pop(contact_id, None)
            await writer.durable(writer.append(_DELETE, [(c,) for c, _ in items]))
        return tried

    def status(self) -> dict[str, Any]:
        return {**self.stats, "pending": len(self.pending)}
