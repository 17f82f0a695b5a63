"""The durable order book: one row per accepted offer, keyed by its contact id.

Its own SQLite file in the state directory (``boss_orders.db``), opened with the state-file
conventions of :mod:`gateway.store` (WAL, synchronous=full, 0640, claimed as ours). An
acceptance is inserted with ``INSERT OR IGNORE``, so the same contact accepted twice (a
repeated "Y", a CRM retry) is one order. States: ``pending`` (not yet answered by the BOSS),
``placed`` (the BOSS said yes), ``failed`` (the BOSS said no: a result code not in
``ok_codes``, or a refused request). ``sms`` says where the result SMS is: ``none`` (not yet),
``queued``, ``suppressed`` (contact control said no), ``skipped`` (no template).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from gateway.model import Acceptance
from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS boss_orders (
    contact_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    channel TEXT NOT NULL,
    answer TEXT NOT NULL,
    product TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '{}',
    last_error TEXT,
    sms TEXT NOT NULL DEFAULT 'none',
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS boss_orders_due ON boss_orders (state, next_at);
"""

COLUMNS = (
    "contact_id",
    "campaign_id",
    "msisdn",
    "channel",
    "answer",
    "product",
    "accepted_at",
    "state",
    "attempts",
    "next_at",
    "result",
    "last_error",
    "sms",
    "updated_at",
)


@attrs.frozen(kw_only=True)
class Order:
    contact_id: str
    campaign_id: str
    msisdn: str
    channel: str
    answer: str
    product: str
    accepted_at: float
    state: str
    attempts: int
    next_at: float
    result: str
    last_error: str | None
    sms: str
    updated_at: float

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Order:
        return cls(**dict(zip(COLUMNS, row, strict=True)))


class OrderBook:
    def __init__(self, worker: SqliteWorker) -> None:
        self.worker = worker

    async def create(self) -> None:
        await self.worker.run(lambda c: c.executescript(SCHEMA))

    async def add(self, items: Sequence[tuple[Acceptance, str]], now: float) -> int:
        """Insert new orders (acceptance, product); returns how many were new."""
        rows = [
            (a.contact_id, a.campaign_id, a.msisdn, a.channel, a.answer, product, a.at, now)
            for a, product in items
        ]

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO boss_orders (contact_id, campaign_id, msisdn, channel,"
                " answer, product, accepted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return conn.total_changes - before

        return await self.worker.transaction(write)

    async def due(self, now: float, limit: int) -> list[Order]:
        """Pending orders due now, and answered ones whose result SMS is not out yet."""
        rows = await self.worker.run(
            lambda c: c.execute(
                f"SELECT {', '.join(COLUMNS)} FROM boss_orders"
                " WHERE (state='pending' AND next_at<=?) OR (state!='pending' AND sms='none')"
                " ORDER BY next_at LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [Order.from_row(r) for r in rows]

    async def next_due(self) -> float | None:
        row = await self.worker.run(
            lambda c: c.execute(
                "SELECT MIN(next_at) FROM boss_orders WHERE state='pending'"
            ).fetchone()
        )
        return row[0] if row else None

    async def get(self, contact_id: str) -> Order | None:
        row = await self.worker.run(
            lambda c: c.execute(
                f"SELECT {', '.join(COLUMNS)} FROM boss_orders WHERE contact_id=?", (contact_id,)
            ).fetchone()
        )
        return Order.from_row(row) if row else None

    async def update(self, contact_id: str, now: float, **values: Any) -> None:
        names = sorted(values)
        sets = ", ".join(f"{n}=?" for n in names)
        await self.worker.transaction(
            lambda c: c.execute(
                f"UPDATE boss_orders SET {sets}, updated_at=? WHERE contact_id=?",
                (*(values[n] for n in names), now, contact_id),
            )
        )

    async def counts(self) -> dict[str, int]:
        rows = await self.worker.run(
            lambda c: c.execute("SELECT state, COUNT(*) FROM boss_orders GROUP BY state").fetchall()
        )
        return {state: n for state, n in rows}
