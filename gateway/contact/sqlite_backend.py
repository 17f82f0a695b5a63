"""The embedded backend: counters and reservations in memory, durable in the SQLite ledger.

The authoritative state for decisions is in this process: per subscriber, a short list of
record tuples (reservations and contacts inside the longest window).
Check-and-reserve is a synchronous function, so in Trio it is atomic without a lock. Every
change is appended to the ledger and a caller returns only after the ledger's group commit
made it durable; at start the counters are rebuilt from the ledger rows of the horizon.

This keeps a decision at tens of microseconds of Python, instead of a SQLite transaction
(and an fsync) per decision -- see ``scripts/bench_contact.py`` for the naive comparison.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
import trio

from gateway.contact.config import ContactConfig
from gateway.contact.control import (
    RESERVE,
    ContactControlBase,
    Duplicate,
    Preemptor,
    open_local_database,
)
from gateway.contact.engine import (
    AT,
    CAMPAIGN,
    CHANNEL,
    CID,
    CLASS,
    COMMITTED,
    ENDED,
    EXPIRED,
    EXPIRES,
    MSISDN,
    PRIORITY,
    RESERVED,
    STATE,
    Record,
    Violation,
    first_violation,
    is_live,
    make_record,
    record_dict,
    with_state,
)
from gateway.contact.ledger import Ledger, ledger_row_from_outbox, load_counter_rows
from gateway.contact.lists import ListStore
from gateway.model import ContactRequest

_FS, _RS = "\x1f", "\x1e"
_HELD = float("inf")  # the expiry of a reservation queued in the outbox (see held_expiry)


def _encode(r: Record) -> str:
    return _FS.join(
        (
            r[MSISDN],
            repr(r[AT]),
            r[CHANNEL],
            r[CAMPAIGN],
            r[CLASS],
            str(r[PRIORITY]),
            repr(r[EXPIRES]),
            str(r[STATE]),
        )
    )


def _decode(cid: str, text: str) -> Record:
    m, at, ch, camp, cls, prio, exp, st = text.split(_FS)
    return (cid, m, float(at), ch, camp, cls, int(prio), float(exp), int(st))


class _Records:
    """contact_id -> record, stored as strings.

    Why strings: a dict holding only strings and floats is not tracked by the garbage
    collector, while one that keeps receiving fresh tuples is, and every full collection
    then walks all its entries (measured: a fifth of the CPU at a million subscribers).
    """

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[str, str] = {}

    def get(self, cid: str) -> Record | None:
        text = self._d.get(cid)
        return None if text is None else _decode(cid, text)

    def __setitem__(self, cid: str, rec: Record) -> None:
        self._d[cid] = _encode(rec)

    def put_fields(self, cid: str, fields: tuple[str, ...]) -> None:
        """Store a record given as its text fields (see ``_encode``), the last one holding the
        expiry and the state already joined: what a batch's reservations share is formatted
        once per batch."""
        self._d[cid] = _FS.join(fields)

    def set_state(self, rec: Record, state: int) -> Record:
        """Store ``rec`` (as just read) with a new state; the new record. The state is the
        text's last field: replaced without encoding the record again."""
        d, cid = self._d, rec[CID]
        text = d[cid]
        d[cid] = text[: text.rindex(_FS) + 1] + str(state)
        return with_state(rec, state)

    def __contains__(self, cid: str) -> bool:
        return cid in self._d

    def __len__(self) -> int:
        return len(self._d)

    def values(self) -> list[Record]:
        return [_decode(c, t) for c, t in self._d.items()]

    def keep(self, predicate: Any) -> None:
        self._d = {c: t for c, t in self._d.items() if predicate(_decode(c, t))}


class _History:
    """MSISDN -> its contact ids, oldest first, stored as one string (see :class:`_Records`)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[str, str] = {}

    def get(self, msisdn: str) -> tuple[str, ...]:
        text = self._d.get(msisdn)
        return tuple(text.split(_RS)) if text else ()

    def __setitem__(self, msisdn: str, ids: tuple[str, ...]) -> None:
        if ids:
            self._d[msisdn] = _RS.join(ids)
        else:
            self._d.pop(msisdn, None)

    def append(self, msisdn: str, cid: str) -> None:
        text = self._d.get(msisdn)
        self._d[msisdn] = f"{text}{_RS}{cid}" if text else cid

    def items(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(m, tuple(t.split(_RS))) for m, t in self._d.items()]

    def total(self) -> int:
        return sum(t.count(_RS) + 1 for t in self._d.values())


class ReceiptRecorder:
    """``fn(conn, contact_id, prior, final, now)``: the ledger row a receipt's final state asks
    for (see :meth:`SqliteContactControl.receipt_recorder`). Plain data, so that it travels to
    a writer process (:mod:`gateway.writer_process`) with the op that calls it."""

    __slots__ = ("refund", "steps")

    def __init__(self, steps: dict[str, tuple[str, str]], refund: frozenset[str]) -> None:
        self.steps = steps
        self.refund = refund

    def __call__(
        self, conn: sqlite3.Connection, contact_id: str, prior: str, final: str, now: float
    ) -> None:
        step = self.steps.get(final)
        if step is not None and prior not in self.refund:
            ledger_row_from_outbox(conn, contact_id, step[0], step[1], now)


class SqliteContactControl(ContactControlBase):
    """Contact control with in-memory counters and the SQLite ledger as the durable record.

    ``_records`` maps contact_id to its record tuple (see :data:`engine.Record`);
    ``_history`` maps an MSISDN to the tuple of its contact ids, oldest first; ``_open``
    maps the contact ids of uncommitted reservations to their expiry.
    """

    backend_name = "sqlite"
    # Reservations queued in the outbox never expire by ``reservation_timeout``: the message
    # may still go out (the SMSC down, the queue long, a restart), and the outbox brings every
    # entry to a final state that commits or releases it (submit, rejection, the entry's own
    # expiry, the unknown of a lost answer). Their ledger rows carry no expiry, so a restart
    # rebuilds them held too. (Committing on enqueue instead would count messages never sent,
    # and a refund could not tell them from real contacts.)
    held_expiry = _HELD

    def __init__(
        self, config: ContactConfig, lists: ListStore, ledger: Ledger | None, **kw: Any
    ) -> None:
        super().__init__(config, lists, ledger, **kw)
        self._history = _History()
        self._records = _Records()
        self._open: dict[str, float] = {}
        self._horizon = config.horizon
        self._last_prune = 0.0

    def _configured(self) -> None:
        self._horizon = self.config.horizon

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
                # no expiry: nothing was reserved (passive channel, or a duplicate's answer)
                if expires is None or (rec is not None and rec[STATE] < ENDED):
                    continue
                records[cid] = make_record(
                    cid, msisdn, at, channel, campaign, cls, priority or 0, expires
                )
            elif rec is not None:
                state = {"committed": COMMITTED, "expired": EXPIRED}.get(event, ENDED)
                records[cid] = with_state(rec, state)
        by_msisdn: dict[str, list[Record]] = {}
        for rec in records.values():
            if rec[STATE] >= ENDED:
                continue
            by_msisdn.setdefault(rec[MSISDN], []).append(rec)
            if rec[STATE] == RESERVED:
                self._open[rec[CID]] = rec[EXPIRES]
        for m, recs in by_msisdn.items():
            self._history[m] = tuple(r[CID] for r in sorted(recs, key=lambda r: r[AT]))
        return self._history.total()

    # -- check and reserve ----------------------------------------------------------------------

    async def _reserve_batch(
        self, items: list[tuple[ContactRequest, list[Any], int]], now: float, expires: float
    ) -> list[Violation | Duplicate | None]:
        # Synchronous on purpose: no checkpoint between check and reserve (atomic in Trio).
        history, records, open_ = self._history, self._records, self._open
        cutoff = now - self._horizon
        expiring = expires != _HELD
        results: list[Violation | Duplicate | None] = []
        # a new reservation's text: the same time, expiry and state for the whole batch
        put, at_text, tail = records.put_fields, repr(now), _FS.join((repr(expires), str(RESERVED)))
        for request, checks, mode in items:
            cid = request.contact_id
            existing = records.get(cid)
            if existing is not None and mode == RESERVE and is_live(existing, now):
                results.append(
                    Duplicate(existing[EXPIRES] if existing[STATE] == RESERVED else None)
                )
                continue
            msisdn = request.msisdn
            ids = history.get(msisdn)
            recs = None
            if ids:
                recs = [records.get(c) for c in ids]
                if recs[0][AT] < cutoff or any(r[STATE] >= ENDED for r in recs):
                    recs = [r for r in recs if r[AT] >= cutoff and r[STATE] < ENDED]
                    history[msisdn] = tuple(r[CID] for r in recs)
            violation = first_violation(recs, checks, now, request.priority) if checks else None
            if violation is None and mode == RESERVE:
                put(
                    cid,
                    (
                        msisdn,
                        at_text,
                        request.channel,
                        request.campaign_id,
                        request.campaign_class,
                        str(request.priority),
                        tail,
                    ),
                )
                history.append(msisdn, cid)
                if expiring:
                    open_[cid] = expires
            results.append(violation)
        return results

    def _forget(self, contact_ids: list[str]) -> None:
        records, history = self._records, self._history
        for cid in contact_ids:
            rec = records.get(cid)
            if rec is None or rec[STATE] != RESERVED:
                continue
            self._open.pop(cid, None)
            records[cid] = with_state(rec, ENDED)
            history[rec[MSISDN]] = tuple(c for c in history.get(rec[MSISDN]) if c != cid)

    async def _transition(
        self, contact_id: str, event: str, reason: str, now: float, *, only_reserved: bool = False
    ) -> bool:
        row = self._transition_row(contact_id, event, reason, now, only_reserved)
        if row is None:
            return False
        if self.ledger is not None:
            await self.ledger.durable(self.ledger.append(row))
        return True

    def stage_delivery(self, delivery: Any) -> bool:
        step = self._delivery_step(delivery)
        if step is not None:
            event, reason, only_reserved = step
            row = self._transition_row(
                delivery.contact_id, event, reason, self.clock(), only_reserved
            )
            if row is not None and self.ledger is not None:
                self.ledger.append(row)
        return True

    def receipt_recorder(self) -> Callable[[sqlite3.Connection, str, str, str, float], None]:
        """For the outbox's receipt transaction: ``fn(conn, contact_id, prior, final, now)``
        writes the ledger row that the message's final state asks for (runs in the writer
        thread: SQL only). The memory follows with :meth:`apply_recorded` once that
        transaction committed.

        Receipts match a message only once its submit answer is recorded, and that recording
        committed the contact in the same transaction (or recovery did, for an unknown): so
        a receipt never writes ``committed``; it writes a refund (``refund_on``) unless the
        entry's ``prior`` state already was one. Every transition is in the ledger once,
        whatever the order of submit answer and receipt."""
        refund = set(self.config.refund_on)
        steps = {}
        for state in ("delivered", "undeliverable", "expired", "rejected", "unknown"):
            step = self._delivery_step(_FinalOnly(state))
            if step is not None and step[0] != "committed" and not step[2]:
                steps[state] = step[:2]

        return ReceiptRecorder(steps, frozenset(refund))

    def apply_recorded(self, delivery: Any) -> None:
        """The memory side of a reconciliation whose ledger row is already durable."""
        step = self._delivery_step(delivery)
        if step is not None:
            self._transition_row(delivery.contact_id, step[0], step[1], self.clock(), step[2])

    def _transition_row(
        self, contact_id: str, event: str, reason: str, now: float, only_reserved: bool
    ) -> tuple[Any, ...] | None:
        """Change the record in memory; the ledger row to write, or None if nothing changed."""
        rec = self._records.get(contact_id)
        if rec is None:
            structlog.get_logger().warning(
                "contact.unknown_reservation", contact_id=contact_id, transition=event
            )
            return None
        if event == "committed":
            if rec[STATE] == COMMITTED:
                return None
            if rec[STATE] == ENDED:  # released or pre-empted: the outbox withdrew it
                structlog.get_logger().warning(
                    "contact.commit_after_release", contact_id=contact_id
                )
                return None
            if rec[STATE] == EXPIRED:  # sent after its reservation expired: a contact all the same
                reason = reason or "late"
                if contact_id not in self._history.get(rec[MSISDN]):
                    self._history.append(rec[MSISDN], contact_id)
            rec = self._records.set_state(rec, COMMITTED)
        else:
            if not is_live(rec, now) or (only_reserved and rec[STATE] != RESERVED):
                return None
            rec = self._records.set_state(rec, ENDED)
        self._open.pop(contact_id, None)
        return _event_row(rec, now, event, reason)

    # -- housekeeping -------------------------------------------------------------------------

    async def sweep(self) -> int:
        """End expired reservations (recorded ``expired``) and forget records past the horizon."""
        now = self.clock()
        records = self._records
        rows = []
        for cid in [c for c, exp in self._open.items() if exp <= now]:
            del self._open[cid]
            rec = records.set_state(records.get(cid), EXPIRED)
            rows.append(_event_row(rec, now, "expired", "reservation_timeout"))
        if now - self._last_prune > 3600 and self._horizon != float("inf"):
            self._last_prune = now
            cutoff = now - self._horizon
            records.keep(lambda r: r[AT] >= cutoff)
            history = _History()
            for m, ids in self._history.items():
                kept = []
                for c in ids:
                    r = records.get(c)
                    if r is not None and r[STATE] < ENDED:
                        kept.append(c)
                history[m] = tuple(kept)
            self._history = history
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
                n += await self.prune_ledger()
            except Exception as exc:
                log.error("contact.sweep_failed", error=str(exc))
            else:
                if n:
                    log.info("contact.swept", ended=n)

    def open_reservations(self) -> int:
        now = self.clock()
        return sum(1 for exp in self._open.values() if exp > now)

    async def current_contacts(self, msisdn: str) -> list[dict[str, Any]]:
        """Contacts and open reservations of ``msisdn`` that count against caps now."""
        now = self.clock()
        recs = (self._records.get(c) for c in self._history.get(msisdn))
        return [record_dict(r) for r in recs if is_live(r, now)]


class _FinalOnly:
    """A stand-in delivery with only a final state (what ``_delivery_step`` reads)."""

    def __init__(self, state: str) -> None:
        from gateway.model import DeliveryState

        self.state = DeliveryState(state)


def _event_row(rec: Record, now: float, event: str, reason: str) -> tuple[Any, ...]:
    return (
        now,
        event,
        rec[CID],
        rec[MSISDN],
        rec[CAMPAIGN],
        rec[CHANNEL],
        rec[CLASS],
        rec[PRIORITY],
        reason or None,
        None,
        None,
        None,
        None,
    )


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
    clock = clock or time.time
    async with open_local_database(config, path) as writer:
        lists = ListStore(writer, clock=clock)
        await writer.run(lists.load)
        ledger = Ledger(writer)
        control = SqliteContactControl(
            config, lists, ledger, clock=clock, preemptor=preemptor, on_recorded=on_recorded
        )
        await writer.run(control.load)
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.serve_indexer)
            await nursery.start(control.serve_sweeper)
            try:
                yield control
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(10):
                        await ledger.flush()
                nursery.cancel_scope.cancel()
