"""The node's journal of reservation changes that could not reach Redis.

In Redis mode a commit (the channel handed a message to the network) or a refund (a receipt
in ``refund_on``) that meets an unreachable Redis is not lost: it is written here, in the
node's local SQLite file beside the contact ledger, and
:meth:`~gateway.contact.redis_backend.RedisContactControl.replay_journal` applies the entries
to Redis in the order they were written once Redis answers again. Replaying an entry twice
changes nothing (the Lua scripts of :mod:`.redis_scripts` act only on the state they expect),
so an entry whose transaction reached Redis but whose answer was lost is safe to replay.

Storage goes through a *runner*: any object with ``await run(fn, *args)`` and
``await transaction(fn, *args)`` that calls ``fn(conn, *args)`` on the state database's
connection (:class:`~gateway.store.SqliteWorker` today). The SQL is in the plain functions
below, so a different writer only has to call them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from gateway.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS contact_redis_journal (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    contact_id TEXT NOT NULL,
    msisdn TEXT,
    event TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    only_reserved INTEGER NOT NULL DEFAULT 0
);
"""

#: One journaled change: (at, contact_id, msisdn or None, event, reason, only_reserved).
#: ``event`` is ``committed`` or a release event (``released``, ``refunded``, ``preempted``).
Entry = tuple[float, str, str | None, str, str, bool]


class Runner(Protocol):
    async def run(self, fn: Any, *args: Any) -> Any: ...

    async def transaction(self, fn: Any, *args: Any) -> Any: ...


# -- the SQL (each takes the connection; run them in a transaction where they write) ------------


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def append_entries(conn: sqlite3.Connection, entries: Sequence[Entry]) -> None:
    conn.executemany(
        "INSERT INTO contact_redis_journal (at, contact_id, msisdn, event, reason, only_reserved)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (at, cid, msisdn, event, reason, int(only))
            for at, cid, msisdn, event, reason, only in entries
        ],
    )


def read_entries(conn: sqlite3.Connection, limit: int) -> list[tuple[int, Entry]]:
    """The oldest ``limit`` entries, in order, each with its sequence number."""
    rows = conn.execute(
        "SELECT seq, at, contact_id, msisdn, event, reason, only_reserved"
        " FROM contact_redis_journal ORDER BY seq LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        (seq, (at, cid, msisdn, event, reason, bool(only)))
        for seq, at, cid, msisdn, event, reason, only in rows
    ]


def remove_entries(conn: sqlite3.Connection, upto: int) -> None:
    conn.execute("DELETE FROM contact_redis_journal WHERE seq <= ?", (upto,))


def count_entries(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT count(*) FROM contact_redis_journal").fetchone()
    return int(n)


class _Batch:
    __slots__ = ("entries", "error", "written")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.written = False
        self.error: Exception | None = None


class RedisJournal:
    """The journal through a runner, with the number of entries waiting kept in memory.

    Appends are group-committed: while one transaction is being written, the entries of
    the callers that arrive meanwhile gather and go together in the next one, in call order.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.pending = 0  # entries written and not yet replayed
        self.writing = 0  # entries handed to append and not yet written
        self.journaled = 0  # entries written since start
        self.replayed = 0  # entries replayed since start
        self.writes = 0  # transactions that appended entries
        self._batch = _Batch()
        self._write_lock = trio.Lock()

    @property
    def waiting(self) -> int:
        """Entries not yet replayed, including those being written: a new transition must
        queue behind them."""
        return self.pending + self.writing

    async def open(self) -> None:
        """Create the table if needed and count what an earlier run left to replay."""
        await self.runner.run(create_schema)
        self.pending = await self.runner.run(count_entries)

    async def append(self, entries: Sequence[Entry]) -> None:
        """Durable when this returns (group commit); raises if the write failed."""
        batch = self._batch
        batch.entries.extend(entries)
        self.writing += len(entries)
        async with self._write_lock:
            if not batch.written:  # first in line: write everything gathered so far
                self._batch = _Batch()
                try:
                    await self.runner.transaction(append_entries, batch.entries)
                except Exception as exc:
                    batch.error = exc
                else:
                    self.pending += len(batch.entries)
                    self.journaled += len(batch.entries)
                    self.writes += 1
                finally:
                    batch.written = True
                    self.writing -= len(batch.entries)
        if batch.error is not None:
            raise StoreError(f"contact journal write failed: {batch.error}") from batch.error

    async def wait_written(self) -> None:
        """Wait for the append being written now (if any) to finish."""
        async with self._write_lock:
            pass

    async def read(self, limit: int) -> list[tuple[int, Entry]]:
        return await self.runner.run(read_entries, limit)

    async def remove(self, upto: int, count: int) -> None:
        """Drop the ``count`` entries up to sequence ``upto`` (they were replayed)."""
        await self.runner.transaction(remove_entries, upto)
        self.pending = max(0, self.pending - count)
        self.replayed += count
