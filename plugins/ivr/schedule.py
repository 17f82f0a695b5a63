"""The IVR channel's durable retry schedule (its own SQLite file in the state directory).

A contact whose first call was placed is ``submitted`` in the outbox (the contact counts
once); the calls after it (busy, no answer) are this channel's business: each retry waits
here, with its due time and the count of each result so far, until it is called or given up.
Durable, so a restart keeps every retry; small, so the channel reads what is due each second.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import trio

SCHEMA = """
CREATE TABLE IF NOT EXISTS ivr_retry (
    contact_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    content TEXT NOT NULL,
    message_id TEXT,
    counts TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    not_before REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ivr_retry_due ON ivr_retry (not_before);
CREATE INDEX IF NOT EXISTS ivr_retry_msisdn ON ivr_retry (msisdn);
"""


@attrs.frozen(kw_only=True)
class Retry:
    """A call to make again: ``attempt`` is its number (2 for the first retry)."""

    contact_id: str
    campaign_id: str
    msisdn: str
    content: dict[str, Any]
    message_id: str | None
    counts: dict[str, int]
    attempt: int
    not_before: float
    reason: str  # the last result ("busy", "no_answer") or "presence"


@attrs.define(eq=False)
class RetrySchedule:
    path: Path
    _conn: sqlite3.Connection | None = None
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            return conn

        self._conn = await trio.to_thread.run_sync(connect, limiter=self._limiter)

    async def close(self) -> None:
        if self._conn is not None:
            await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)
            self._conn = None

    async def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._conn
        assert conn is not None, "RetrySchedule.open() first"

        def run() -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def put(self, retry: Retry) -> None:
        await self._run(
            "INSERT OR REPLACE INTO ivr_retry VALUES (?,?,?,?,?,?,?,?,?)",
            (
                retry.contact_id,
                retry.campaign_id,
                retry.msisdn,
                json.dumps(retry.content),
                retry.message_id,
                json.dumps(retry.counts),
                retry.attempt,
                retry.not_before,
                retry.reason,
            ),
        )

    async def delete(self, contact_id: str) -> None:
        await self._run("DELETE FROM ivr_retry WHERE contact_id = ?", (contact_id,))

    async def due(self, now: float, limit: int) -> list[Retry]:
        rows = await self._run(
            "SELECT * FROM ivr_retry WHERE not_before <= ? ORDER BY not_before LIMIT ?",
            (now, limit),
        )
        return [_retry(r) for r in rows]

    async def next_due(self) -> float | None:
        rows = await self._run("SELECT min(not_before) FROM ivr_retry")
        return rows[0][0] if rows else None

    async def wake(self, msisdn: str, now: float) -> int:
        """A held subscriber's phone came on: their presence holds are due now."""
        rows = await self._run(
            "UPDATE ivr_retry SET not_before = ? WHERE msisdn = ? AND reason = 'presence'"
            " AND not_before > ? RETURNING contact_id",
            (now, msisdn, now),
        )
        return len(rows)

    async def get(self, contact_id: str) -> Retry | None:
        rows = await self._run("SELECT * FROM ivr_retry WHERE contact_id = ?", (contact_id,))
        return _retry(rows[0]) if rows else None

    async def all(self) -> list[Retry]:
        return [_retry(r) for r in await self._run("SELECT * FROM ivr_retry ORDER BY not_before")]


def _retry(row: tuple[Any, ...]) -> Retry:
    return Retry(
        contact_id=row[0],
        campaign_id=row[1],
        msisdn=row[2],
        content=json.loads(row[3]),
        message_id=row[4],
        counts=json.loads(row[5]),
        attempt=row[6],
        not_before=row[7],
        reason=row[8],
    )
