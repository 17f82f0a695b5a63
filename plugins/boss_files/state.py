"""The plugin's own durable state: applied files, quarantine log, products, report pushes.

One SQLite database, ``<work_dir>/boss_files.sqlite`` (WAL, ``synchronous=FULL``), beside
the core's state database rather than in it: these tables belong to this plugin, and the
core's one writer serves the contact path. Every call runs in a worker thread through a
limiter of one, so the connection is used by one thread at a time.

``applied_files`` is the memory that a file (name and checksum) is never applied twice: its
row is written in the same transaction as the product tables for product feeds, and after the
swap for the others (whose application is idempotent: see :mod:`.apply`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import trio

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied_files (
    id INTEGER PRIMARY KEY,
    feed TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    records INTEGER NOT NULL,
    applied_at REAL NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT,
    UNIQUE (name, checksum)
);
CREATE TABLE IF NOT EXISTS quarantined_files (
    id INTEGER PRIMARY KEY,
    feed TEXT NOT NULL,
    name TEXT NOT NULL,
    at REAL NOT NULL,
    reasons TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS product_catalogue (
    product_id TEXT PRIMARY KEY,
    fields TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS product_subscriptions (
    msisdn TEXT NOT NULL,
    product_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (msisdn, product_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_files (
    name TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    written_at REAL NOT NULL,
    pushed TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
"""


class FilesState:
    """Blocking SQLite behind ``await state.run(fn, *args)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)
        self._limiter = trio.CapacityLimiter(1)

    def close(self) -> None:
        self._conn.close()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, self._conn, *args, limiter=self._limiter)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        def work(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self.run(work)

    # -- applied files ----------------------------------------------------------------------

    async def applied(self, name: str, checksum: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            cur = conn.execute(
                "SELECT id, feed, kind, applied_at, archived FROM applied_files "
                "WHERE name = ? AND checksum = ?",
                (name, checksum),
            )
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip(("id", "feed", "kind", "applied_at", "archived"), row, strict=True))

        return await self.run(read)

    @staticmethod
    def record_applied(
        conn: sqlite3.Connection,
        *,
        feed: str,
        kind: str,
        name: str,
        checksum: str,
        records: int,
        snapshot: str | None = None,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO applied_files (feed, kind, name, checksum, records, applied_at, snapshot)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (feed, kind, name, checksum, records, time.time(), snapshot),
        )
        return int(cur.lastrowid or 0)

    async def unarchived(self, feed: str) -> list[tuple[int, str]]:
        """(id, file name) of the files of ``feed`` applied but not yet archived."""

        def read(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            rows = conn.execute(
                "SELECT id, name FROM applied_files WHERE feed = ? AND archived = 0 ORDER BY id",
                (feed,),
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

        return await self.run(read)

    async def mark_archived(self, applied_id: int) -> None:
        await self.run(
            lambda c: c.execute("UPDATE applied_files SET archived = 1 WHERE id = ?", (applied_id,))
        )

    async def latest_snapshot(self) -> str | None:
        """The profile snapshot in force: the newest applied profiles or profiles_delta file."""

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT snapshot FROM applied_files WHERE snapshot IS NOT NULL "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return None if row is None else str(row[0])

        return await self.run(read)

    async def history(self, limit: int = 20) -> list[dict[str, Any]]:
        cols = ("id", "feed", "kind", "name", "checksum", "records", "applied_at", "archived")

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                f"SELECT {', '.join(cols)} FROM applied_files ORDER BY id DESC LIMIT ?", (limit,)
            )
            return [dict(zip(cols, r, strict=True)) for r in rows]

        return await self.run(read)

    async def count_applied(self, name: str) -> int:
        return await self.run(
            lambda c: int(
                c.execute("SELECT count(*) FROM applied_files WHERE name = ?", (name,)).fetchone()[
                    0
                ]
            )
        )

    # -- quarantine -------------------------------------------------------------------------

    async def record_quarantine(self, feed: str, name: str, reasons: list[str]) -> None:
        await self.run(
            lambda c: c.execute(
                "INSERT INTO quarantined_files (feed, name, at, reasons) VALUES (?, ?, ?, ?)",
                (feed, name, time.time(), json.dumps(reasons, ensure_ascii=False)),
            )
        )

    async def quarantine_log(self, limit: int = 20) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT feed, name, at, reasons FROM quarantined_files ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [
                {"feed": f, "name": n, "at": a, "reasons": json.loads(r)} for f, n, a, r in rows
            ]

        return await self.run(read)

    # -- products ---------------------------------------------------------------------------

    @staticmethod
    def replace_catalogue(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.execute("DELETE FROM product_catalogue")
        conn.executemany(
            "INSERT OR REPLACE INTO product_catalogue VALUES (?, ?)",
            ((r["product_id"], json.dumps(r, ensure_ascii=False)) for r in rows),
        )

    @staticmethod
    def replace_subscriptions(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.execute("DELETE FROM product_subscriptions")
        FilesState.upsert_subscriptions(conn, rows)

    @staticmethod
    def upsert_subscriptions(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO product_subscriptions VALUES (?, ?, ?)",
            ((r["msisdn"], r["product_id"], json.dumps(r, ensure_ascii=False)) for r in rows),
        )

    @staticmethod
    def delete_subscriptions(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.executemany(
            "DELETE FROM product_subscriptions WHERE msisdn = ? AND product_id = ?",
            ((r["msisdn"], r["product_id"]) for r in rows),
        )

    async def product(self, product_id: str | None) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            if product_id is None:
                rows = conn.execute("SELECT fields FROM product_catalogue ORDER BY product_id")
            else:
                rows = conn.execute(
                    "SELECT fields FROM product_catalogue WHERE product_id = ?", (product_id,)
                )
            return [json.loads(r[0]) for r in rows]

        return await self.run(read)

    async def subscriptions(self, msisdn: str) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT fields FROM product_subscriptions WHERE msisdn = ? ORDER BY product_id",
                (msisdn,),
            )
            return [json.loads(r[0]) for r in rows]

        return await self.run(read)

    # -- reports ----------------------------------------------------------------------------

    async def report_written(self, name: str, day: str) -> None:
        await self.run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO report_files (name, day, written_at) VALUES (?, ?, ?)",
                (name, day, time.time()),
            )
        )

    async def report_pushes(self) -> dict[str, dict[str, float]]:
        def read(conn: sqlite3.Connection) -> dict[str, dict[str, float]]:
            return {
                n: json.loads(p) for n, p in conn.execute("SELECT name, pushed FROM report_files")
            }

        return await self.run(read)

    async def report_pushed(self, name: str, destination: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT pushed FROM report_files WHERE name = ?", (name,)).fetchone()
            pushed = json.loads(row[0]) if row else {}
            pushed[destination] = time.time()
            conn.execute(
                "UPDATE report_files SET pushed = ? WHERE name = ?", (json.dumps(pushed), name)
            )

        await self.run(write)
