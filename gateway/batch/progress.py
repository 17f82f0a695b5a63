"""Durable progress of batch campaigns: one row per campaign in the state database.

Written through the state database's one writer (:class:`gateway.store.StateWriter`), so the
cursor commits in the same group commit as the ledger and outbox writes around it. The cursor
moves only after the decisions of the targets before it are durable; after kill -9 the runner
resumes at the cursor, and the few targets decided between the last cursor write and the
crash are presented again under the same ``contact_id``: contact control answers "duplicate"
for a live reservation and the outbox keeps its one entry, so no target is sent twice.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs

from gateway.store import StateWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_progress (
    campaign_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    shard TEXT NOT NULL,
    total INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
"""

_UPDATE = "UPDATE batch_progress SET cursor = ?, updated_at = ? WHERE campaign_id = ?"
_FINISH = (
    "UPDATE batch_progress SET cursor = ?, updated_at = ?, finished_at = ? WHERE campaign_id = ?"
)


@attrs.frozen(kw_only=True)
class ProgressRow:
    campaign_id: str
    snapshot: str
    shard: str
    total: int
    cursor: int
    started_at: float
    updated_at: float
    finished_at: float | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ProgressRow:
        return cls(
            campaign_id=row[0],
            snapshot=row[1],
            shard=row[2],
            total=row[3],
            cursor=row[4],
            started_at=row[5],
            updated_at=row[6],
            finished_at=row[7],
        )


def _create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _select(conn: sqlite3.Connection, campaign_id: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        "SELECT campaign_id, snapshot, shard, total, cursor, started_at, updated_at, finished_at"
        " FROM batch_progress WHERE campaign_id = ?",
        (campaign_id,),
    ).fetchone()
    return row


def _insert(conn: sqlite3.Connection, row: ProgressRow) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO batch_progress (campaign_id, snapshot, shard, total, cursor,"
        " started_at, updated_at, finished_at) VALUES (?,?,?,?,?,?,?,?)",
        attrs.astuple(row),
    )


@attrs.define(eq=False)
class ProgressStore:
    """The ``batch_progress`` table, through the state database's writer."""

    writer: StateWriter

    async def create_schema(self) -> None:
        await self.writer.setup(_create)

    async def get(self, campaign_id: str) -> ProgressRow | None:
        # read on the writer's own connection: it sees every committed cursor
        row = await self.writer.setup(_select, campaign_id)
        return ProgressRow.from_row(row) if row is not None else None

    async def start(self, row: ProgressRow) -> None:
        await self.writer.call(_insert, row)

    def stage(self, campaign_id: str, cursor: int, now: float) -> None:
        """Queue a cursor move for the writer's next commit, without waiting for it."""
        self.writer.append(_UPDATE, [(cursor, now, campaign_id)])

    async def advance(self, campaign_id: str, cursor: int, now: float) -> None:
        await self.writer.durable(self.writer.append(_UPDATE, [(cursor, now, campaign_id)]))

    async def finish(self, campaign_id: str, cursor: int, now: float) -> None:
        await self.writer.durable(self.writer.append(_FINISH, [(cursor, now, now, campaign_id)]))
