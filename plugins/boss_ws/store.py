"""What the webservices remember: work orders received, CRM feedback, CRM dispatches.

Its own SQLite file (``boss_ws.db``) in the state directory, opened with the state-file
conventions of :mod:`gateway.store`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS boss_ws_work_orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    action TEXT NOT NULL,
    targets INTEGER,
    targets_ref TEXT,
    sha256 TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS boss_ws_work_orders_by_campaign ON boss_ws_work_orders (campaign_id);
CREATE TABLE IF NOT EXISTS boss_ws_feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    campaign_id TEXT,
    contact_id TEXT,
    note TEXT,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS boss_ws_crm_dispatch (
    id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    file TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL
);
"""


class WsStore:
    def __init__(self, worker: SqliteWorker) -> None:
        self.worker = worker

    async def create(self) -> None:
        await self.worker.run(lambda c: c.executescript(SCHEMA))

    async def insert(self, table: str, row: dict[str, Any]) -> None:
        names = sorted(row)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        await self.worker.transaction(lambda c: c.execute(sql, [row[n] for n in names]))

    async def select(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return await self.worker.run(read)

    async def execute(self, sql: str, *args: Any) -> None:
        await self.worker.transaction(lambda c: c.execute(sql, args))
