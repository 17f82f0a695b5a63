"""The embedded backend: counters and reservations in memory, durable in the SQLite ledger.

The authoritative state for decisions is in this process: per subscriber, a short list of
:class:`~gateway.contact.engine.Record` (reservations and contacts inside the longest window).
Check-and-reserve is a synchronous function, so in Trio it is atomic without a lock. Every
change is appended to the ledger and a caller returns only after the ledger's group commit
made it durable; at start the counters are rebuilt from the ledger rows of the horizon.

This keeps a decision at tens of microseconds of Python, instead of a SQLite transaction
(and an fsync) per decision -- see ``scripts/bench_contact.py`` for the naive comparison.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
import trio

from gateway.contact.config import ContactConfig
from gateway.contact.control import RESERVE, ContactControlBase, Duplicate, Preemptor
from gateway.contact.engine import (
    COMMITTED,
    ENDED,
    RESERVED,
    Record,
    Violation,
    first_violation,
    record_dict,
)
from gateway.contact.ledger import Ledger, load_counter_rows
from gateway.contact.lists import ListStore
from gateway.model import ContactRequest
from gateway.store import SqliteWorker, open_sqlite


class SqliteContactControl(ContactControlBase):
    """Contact control with in-memory counters and the SQLite ledger as the durable record."""

    backend_name = "sqlite"

    def __init__(
        self, config: ContactConfig, lists: ListStore, ledger: Ledger | None, **kw: Any
    ) -> None:
        super().__init__(config, lists, ledger, **kw)
        self._history: dict[str, list[Record]] = {}
        self._records: dict[str, Record] = {}
        self._open: dict[str, Record] = {}  # reservations not yet committed or ended
        self._horizon = config.horizon
        self._last_prune = 0.0

    # -- rebuild ------------------------------------------------------------------------------

    def load(self, conn: sqlite3.Connection) -> int:
        """Rebuild counters from the ledger (blocking; at start). Returns live records."""
        now = self.clock()
        since = now - self._horizon if self._horizon != float("inf") else float("-inf")
        records = self._records
        for event, cid, msisdn, at, channel, campaign, cls, priority, expires in load_counter_rows(
            conn, since
        ):
            rec = records.get(cid)
            if event == "allowed":
                if rec is not None and rec.state != ENDED:
                    continue
                records[cid] = Record(
                    cid, msisdn, at, channel, campaign, cls, priority or 0, expires or 0.0, RESERVED
                )
            elif rec is not None:
                rec.state = COMMITTED if event == "committed" else ENDED
        history = self._history
        for rec in records.values():
            if rec.state == ENDED:
                continue
            history.setdefault(rec.msisdn, []).append(rec)
            if rec.state == RESERVED:
                self._open[rec.contact_id] = rec
        for recs in history.values():
            recs.sort(key=lambda r: r.at)
        return len(self._open) + sum(1 for r in records.values() if r.state == COMMITTED)

    # -- check and reserve ----------------------------------------------------------------------

    async def _reserve_batch(
        self,
        items: list[tuple[ContactRequest, list[Any], int]],
        now: float,
    ) -> list[Violation | Duplicate | None]:
        # Synchronous on purpose: no checkpoint between check and reserve (atomic in Trio).
        history, records, open_ = self._history, self._records, self._open
        cutoff = now - self._horizon
        expires = now + self.config.reservation_timeout
        results: list[Violation | Duplicate | None] = []
        for request, checks, mode in items:
            cid = request.contact_id
            existing = records.get(cid)
            if existing is not None and existing.live(now) and mode == RESERVE:
                results.append(
                    Duplicate(existing.expires_at if existing.state == RESERVED else None)
                )
                continue
            msisdn = request.msisdn
            recs = history.get(msisdn)
            if recs and (recs[0].at < cutoff or recs[0].state == ENDED):
                recs[:] = [r for r in recs if r.at >= cutoff and r.state != ENDED]
            violation = first_violation(recs, checks, now, request.priority) if checks else None
            if violation is None and mode == RESERVE:
                rec = Record(
                    cid,
                    msisdn,
                    now,
                    request.channel,
                    request.campaign_id,
                    request.campaign_class,
                    request.priority,
                    expires,
                )
                if recs is None:
                    history[msisdn] = [rec]
                else:
                    recs.append(rec)
                records[cid] = rec
                open_[cid] = rec
            results.append(violation)
        return results

    async def _transition(self, contact_id: str, event: str, reason: str, now: float) -> bool:
        rec = self._records.get(contact_id)
        if rec is None:
            structlog.get_logger().warning(
                "contact.unknown_reservation", contact_id=contact_id, transition=event
            )
            return False
        if event == "committed":
            if rec.state == COMMITTED:
                return False
            if (
                rec.state == ENDED
            ):  # sent after its reservation expired: it is a contact all the same
                reason = reason or "late"
                recs = self._history.setdefault(rec.msisdn, [])
                if rec not in recs:
                    recs.append(rec)
            rec.state = COMMITTED
        else:
            if not rec.live(now):
                return False
            rec.state = ENDED
        self._open.pop(contact_id, None)
        if self.ledger is not None:
            row = (
                now,
                event,
                rec.contact_id,
                rec.msisdn,
                rec.campaign_id,
                rec.channel,
                rec.campaign_class,
                rec.priority,
                reason or None,
                None,
                None,
                None,
                None,
            )
            await self.ledger.durable(self.ledger.append(row))
        return True

    # -- housekeeping -------------------------------------------------------------------------

    async def sweep(self) -> int:
        """End expired reservations (recorded ``expired``) and forget records past the horizon."""
        now = self.clock()
        expired = [r for r in self._open.values() if r.expires_at <= now]
        rows = []
        for rec in expired:
            rec.state = ENDED
            del self._open[rec.contact_id]
            rows.append(
                (
                    now,
                    "expired",
                    rec.contact_id,
                    rec.msisdn,
                    rec.campaign_id,
                    rec.channel,
                    rec.campaign_class,
                    rec.priority,
                    "reservation_timeout",
                    None,
                    None,
                    None,
                    None,
                )
            )
        if now - self._last_prune > 3600 and self._horizon != float("inf"):
            self._last_prune = now
            cutoff = now - self._horizon
            self._records = {c: r for c, r in self._records.items() if r.at >= cutoff}
            self._history = {
                m: kept
                for m, recs in self._history.items()
                if (kept := [r for r in recs if r.at >= cutoff and r.state != ENDED])
            }
        if rows and self.ledger is not None:
            await self.ledger.durable(self.ledger.extend(rows))
        return len(rows)

    async def serve_sweeper(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        log = structlog.get_logger()
        while True:
            await trio.sleep(self.config.sweep_interval)
            try:
                n = await self.sweep()
                n += await self.lists.purge_expired()
            except Exception as exc:
                log.error("contact.sweep_failed", error=str(exc))
            else:
                if n:
                    log.info("contact.swept", ended=n)

    def open_reservations(self) -> int:
        now = self.clock()
        return sum(1 for r in self._open.values() if r.expires_at > now)

    async def current_contacts(self, msisdn: str) -> list[dict[str, Any]]:
        """Contacts and open reservations of ``msisdn`` that count against caps now."""
        now = self.clock()
        return [record_dict(r) for r in self._history.get(msisdn, ()) if r.live(now)]


def _create_schema(conn: sqlite3.Connection) -> None:
    Ledger.create_schema(conn)
    ListStore.create_schema(conn)


@asynccontextmanager
async def open_sqlite_contact_control(
    config: ContactConfig,
    path: Path | str,
    *,
    clock: Any = None,
    preemptor: Preemptor | None = None,
    on_recorded: Any = None,
) -> AsyncIterator[SqliteContactControl]:
    """Open the database, rebuild lists and counters, run the group commit and the sweeper."""
    import time

    clock = clock or time.time
    conn = await trio.to_thread.run_sync(lambda: open_sqlite(path, synchronous=config.synchronous or "full"))
    worker = SqliteWorker(conn)
    try:
        await worker.run(_create_schema)
        lists = ListStore(worker, clock=clock)
        await worker.run(lists.load)
        ledger = Ledger(worker, interval=config.group_commit_interval)
        control = SqliteContactControl(
            config, lists, ledger, clock=clock, preemptor=preemptor, on_recorded=on_recorded
        )
        await worker.run(control.load)
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.run)
            await nursery.start(control.serve_sweeper)
            try:
                yield control
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(10):
                        await ledger.flush()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await worker.aclose()
