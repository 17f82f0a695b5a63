"""The contact ledger: every decision and every reservation change, in SQLite, by group commit.

One table, ``contact_ledger``, append-only. A decision row carries the outcome and the exact
rule (``reason``, ``rule``, ``detail`` as JSON); later rows for the same ``contact_id`` record
what happened to the reservation (``committed``, ``released``, ``preempted``, ``expired``,
``refunded``). The SQLite backend rebuilds its in-memory counters from these rows at start.

Group commit: rows are appended to the pending batch of the state database's one writer
(:class:`~gateway.store.StateWriter`) and callers await that batch's commit. While one batch
is being written the next one fills, so a thousand concurrent decisions share one fsync, and
each caller still returns only after its row is durable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog
import trio
import trio.lowlevel

from gateway.model import ContactDecision
from gateway.store import StateWriter, WriteBatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS contact_ledger (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    campaign_id TEXT,
    channel TEXT,
    campaign_class TEXT,
    priority INTEGER,
    reason TEXT,
    rule TEXT,
    detail TEXT,
    not_before REAL,
    expires_at REAL
);
-- Lookup tables filled behind the writes (see Ledger.serve_indexer), in sorted batches:
-- an index maintained row by row on the commit path cost 4x the row itself.
CREATE TABLE IF NOT EXISTS contact_ledger_by_msisdn (
    msisdn TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (msisdn, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact_ledger_by_campaign (
    campaign_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (campaign_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact_ledger_indexed (
    id INTEGER PRIMARY KEY CHECK (id = 0), upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO contact_ledger_indexed VALUES (0, 0);
"""

INDEX_CHUNK = 5000
#: Rows a busy writer may leave behind the lookup tables: while decisions keep the writer busy
#: the tables wait (a lookup reads the unindexed tail instead) and catch up when it idles;
#: past this backlog they are filled between decisions as before.
INDEX_BACKLOG = 1_000_000

COLUMNS = (
    "seq",
    "at",
    "event",
    "contact_id",
    "msisdn",
    "campaign_id",
    "channel",
    "campaign_class",
    "priority",
    "reason",
    "rule",
    "detail",
    "not_before",
    "expires_at",
)
_INSERT = (
    "INSERT INTO contact_ledger ("
    + ", ".join(COLUMNS[1:])
    + ") VALUES ("
    + ",".join("?" * 13)
    + ")"
)

#: Events that change the counters (read back at start-up).
COUNTER_EVENTS = ("allowed", "committed", "released", "preempted", "expired", "refunded")


def decision_row(d: ContactDecision) -> tuple[Any, ...]:
    r = d.request
    return (
        d.decided_at,
        d.outcome,  # a StrEnum: stored as its text
        r.contact_id,
        r.msisdn,
        r.campaign_id,
        r.channel,
        r.campaign_class,
        r.priority,
        d.reason,
        d.rule,
        json.dumps(d.detail) if d.detail else None,
        d.not_before,
        d.reservation_expires_at,
    )


class Ledger:
    """Appends ledger rows through the state database's one writer and answers queries.

    Rows go into the writer's pending batch (:meth:`append`, :meth:`extend`, no await), so a
    decision's row commits in the same transaction as whatever else was queued with it (its
    outbox entry); :meth:`durable` waits for that commit.
    """

    def __init__(self, writer: StateWriter, *, interval: float = 0.0) -> None:
        # ``interval`` is the writer's now (see open_local_database); kept for callers
        self.writer = writer
        self.appended = 0  # rows queued by this process
        self.indexed = 0  # of those, put in the lookup tables (an estimate: see serve_indexer)
        self.index_deferred = 0  # rounds the indexer left to a busy writer

    @property
    def worker(self) -> StateWriter:
        """Reads (``run``) and rare writes (``transaction``) of admin code."""
        return self.writer

    @property
    def rows_written(self) -> int:
        return self.writer.rows_written

    @property
    def commits(self) -> int:
        return self.writer.commits

    @staticmethod
    def create_schema(conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)

    # -- writing ----------------------------------------------------------------------------

    def append(self, row: tuple[Any, ...]) -> WriteBatch:
        """Queue a row for the next commit; await :meth:`durable` on the returned batch."""
        self.appended += 1
        return self.writer.append(_INSERT, (row,))

    def extend(self, rows: Sequence[tuple[Any, ...]]) -> WriteBatch:
        self.appended += len(rows)
        return self.writer.append(_INSERT, rows)

    def index_backlog(self) -> int:
        """Rows queued by this process and not yet in the lookup tables (an estimate)."""
        return max(0, self.appended - self.indexed)

    async def durable(self, batch: WriteBatch) -> None:
        """Wait until ``batch`` is committed; raises StoreError if the write failed."""
        await self.writer.durable(batch)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to run: the writer's loop commits (kept for the backends that start it)."""
        task_status.started()
        await trio.sleep_forever()

    async def flush(self) -> None:
        """Wait until every row queued so far is durable (campaign report, shutdown)."""
        await self.writer.flush()

    # -- reading ----------------------------------------------------------------------------

    async def query(
        self,
        *,
        msisdn: str | None = None,
        campaign_id: str | None = None,
        contact_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest-first ledger rows for a subscriber and/or campaign (or one contact).

        A subscriber or campaign is found through its lookup table plus the short tail of
        rows not yet indexed; a contact_id alone scans the table (tests and forensics).
        """
        where, args = [], []
        for column, value in (
            ("msisdn", msisdn),
            ("campaign_id", campaign_id),
            ("contact_id", contact_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        lookup = None
        if msisdn is not None:
            lookup = ("SELECT seq FROM contact_ledger_by_msisdn WHERE msisdn = ?", msisdn)
        elif campaign_id is not None:
            lookup = (
                "SELECT seq FROM contact_ledger_by_campaign WHERE campaign_id = ?",
                campaign_id,
            )

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = "SELECT * FROM contact_ledger"
            params: list[Any] = list(args)
            conditions = list(where)
            if lookup is not None:
                (upto,) = conn.execute("SELECT upto FROM contact_ledger_indexed").fetchone()
                sub = (
                    f"SELECT * FROM contact_ledger WHERE seq IN ({lookup[0]}) AND "
                    + " AND ".join(conditions)
                    + " UNION ALL SELECT * FROM contact_ledger WHERE seq > ? AND "
                    + " AND ".join(conditions)
                )
                sql = f"SELECT * FROM ({sub})"
                params = [lookup[1], *args, upto, *args]
                conditions = []
            if conditions:
                sql += " WHERE " + " AND ".join(conditions)
            sql += " ORDER BY seq DESC LIMIT ?"
            params.append(limit)
            out = []
            for row in conn.execute(sql, params):
                item = dict(zip(COLUMNS, row, strict=True))
                item["detail"] = json.loads(item["detail"]) if item["detail"] else {}
                out.append(item)
            return out

        return await self.writer.run(read)

    async def prune(self, before: float, *, chunk: int = 50_000) -> int:
        """Delete rows (and their lookup entries) written before ``before``; returns how many."""
        total = 0
        while True:
            n = await self.writer.call(_prune_chunk, before, chunk)
            total += n
            if n < chunk:
                return total
            await trio.lowlevel.checkpoint()

    # -- lookup tables ----------------------------------------------------------------------

    async def index_pending(self) -> int:
        """Index up to INDEX_CHUNK rows written since the last call; returns how many."""
        return await self.writer.call(_index_chunk, INDEX_CHUNK)

    async def index_round(self, *, force: bool = False) -> int:
        """Index chunks until caught up, or (unless ``force``) until the writer is busy with
        less than INDEX_BACKLOG rows behind; the rows indexed."""
        total = 0
        while True:
            if not force and self.writer.busy() and self.index_backlog() < INDEX_BACKLOG:
                self.index_deferred += 1
                return total
            n = await self.index_pending()
            self.indexed += n
            total += n
            if n < INDEX_CHUNK:
                queued = self.writer.queued_rows(_INSERT)
                self.indexed = max(self.indexed, self.appended - queued)
                return total
            await trio.lowlevel.checkpoint()

    async def serve_indexer(
        self,
        *,
        interval: float = 1.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the lookup tables behind the writes (small chunks: commits stay quick).

        Decisions first: while the writer is busy and the backlog is under INDEX_BACKLOG, a
        round is left for later (a burst of decisions is not slowed by a quarter for tables
        only admin lookups read); the first round after start-up always runs."""
        task_status.started()
        log = structlog.get_logger()
        failing = None
        first = True
        while True:
            try:
                await self.index_round(force=first)
                first = False
                failing = None
            except Exception as exc:  # a failed chunk is retried on the next round
                if str(exc) != failing:  # once per cause, not every second of a full disk
                    log.error("contact.ledger_index_failed", error=str(exc))
                failing = str(exc)
            await trio.sleep(interval)


def _prune_chunk(conn: sqlite3.Connection, before: float, chunk: int) -> int:
    end = first_seq_since(conn, before, margin=0)
    rows = conn.execute(
        "SELECT seq, msisdn, campaign_id FROM contact_ledger WHERE seq < ? ORDER BY seq LIMIT ?",
        (end, chunk),
    ).fetchall()
    if not rows:
        return 0
    conn.executemany(
        "DELETE FROM contact_ledger_by_msisdn WHERE msisdn = ? AND seq = ?",
        sorted((m, seq) for seq, m, _ in rows),
    )
    conn.executemany(
        "DELETE FROM contact_ledger_by_campaign WHERE campaign_id = ? AND seq = ?",
        sorted((c, seq) for seq, _, c in rows if c is not None),
    )
    conn.execute("DELETE FROM contact_ledger WHERE seq <= ?", (rows[-1][0],))
    return len(rows)


def _index_chunk(conn: sqlite3.Connection, limit: int) -> int:
    (upto,) = conn.execute("SELECT upto FROM contact_ledger_indexed").fetchone()
    (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM contact_ledger").fetchone()
    end = min(last, upto + limit)
    if end <= upto:
        return 0
    # INSERT ... SELECT ... ORDER BY runs inside SQLite, without the GIL (the decision loop
    # keeps running), and sorted inserts touch each B-tree page once: ~4x cheaper than
    # index upkeep row by row on the commit path.
    conn.execute(
        "INSERT OR IGNORE INTO contact_ledger_by_msisdn SELECT msisdn, seq FROM contact_ledger "
        "WHERE seq > ? AND seq <= ? ORDER BY msisdn, seq",
        (upto, end),
    )
    conn.execute(
        "INSERT OR IGNORE INTO contact_ledger_by_campaign SELECT campaign_id, seq FROM contact_ledger "
        "WHERE seq > ? AND seq <= ? AND campaign_id IS NOT NULL ORDER BY campaign_id, seq",
        (upto, end),
    )
    conn.execute("UPDATE contact_ledger_indexed SET upto = ?", (end,))
    return end - upto


def ledger_row_from_outbox(
    conn: sqlite3.Connection, contact_id: str, event: str, reason: str, now: float
) -> None:
    """Append a reservation event for ``contact_id``, its columns read from its outbox entry
    (in the caller's transaction: a receipt's reconciliation)."""
    conn.execute(
        "INSERT INTO contact_ledger (at, event, contact_id, msisdn, campaign_id, channel, priority,"
        " reason) SELECT ?, ?, contact_id, msisdn, campaign_id, channel, priority, ?"
        " FROM outbox_entries WHERE contact_id = ?",
        (now, event, reason or None, contact_id),
    )


def record_lost_answers(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], now: float
) -> None:
    """Record as contacts the messages whose submit answer a crash lost (in the caller's
    transaction: the outbox's recovery). ``rows``: (contact_id, channel, msisdn, campaign_id,
    priority). They may have reached the subscriber, so they count against caps and are never
    refunded by their reservation's timeout, whatever crash follows."""
    conn.executemany(
        _INSERT,
        [
            (now, "committed", cid, msisdn, campaign, channel, None, prio, "final.unknown")
            + (None,) * 4
            for cid, channel, msisdn, campaign, prio in rows
        ],
    )


def first_seq_since(conn: sqlite3.Connection, since: float, *, margin: float = 86400.0) -> int:
    """The first row written at or after ``since - margin``, found by bisection on seq.

    Rows are appended in time order (one process writes them), so ``at`` grows with
    ``seq``; ``margin`` absorbs clock steps backwards. Start-up then reads only the
    horizon's rows instead of scanning the whole ledger.
    """
    if since == float("-inf"):
        return 0
    lo, hi = conn.execute(
        "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM contact_ledger"
    ).fetchone()
    target = since - margin
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            "SELECT at FROM contact_ledger WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)
        ).fetchone()
        if row is None or row[0] >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def load_counter_rows(conn: sqlite3.Connection, since: float) -> list[tuple[Any, ...]]:
    """Rows that rebuild the counters: (event, contact_id, msisdn, at, channel, campaign, class, priority, expires_at)."""
    marks = ",".join("?" * len(COUNTER_EVENTS))
    return conn.execute(
        f"SELECT event, contact_id, msisdn, at, channel, campaign_id, campaign_class, priority, expires_at "
        f"FROM contact_ledger WHERE seq >= ? AND event IN ({marks}) AND at >= ? ORDER BY seq",
        (first_seq_since(conn, since), *COUNTER_EVENTS, since),
    ).fetchall()
