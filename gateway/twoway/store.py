"""Sub-codes and open offers of two-way SMS, in the state database (through its one writer).

``twoway_subcodes``: the sub-code of each campaign with a ``[reply]`` table; ``ended_at`` is
set when the campaign ends, and the row is deleted (the code released) once the offers'
validity has passed since. ``twoway_offers``: the latest offer of each campaign to each
subscriber, with its expiry; answered offers are closed.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store import StateWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS twoway_subcodes (
    sub_code TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL UNIQUE,
    allocated_at REAL NOT NULL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS twoway_offers (
    msisdn TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    offered_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    answered TEXT,
    PRIMARY KEY (msisdn, campaign_id)
) WITHOUT ROWID;
"""

UPSERT_OFFER = (
    "INSERT INTO twoway_offers (msisdn, campaign_id, contact_id, channel, offered_at,"
    " expires_at, answered) VALUES (?,?,?,?,?,?,NULL) ON CONFLICT(msisdn, campaign_id) DO"
    " UPDATE SET contact_id=excluded.contact_id, channel=excluded.channel,"
    " offered_at=excluded.offered_at, expires_at=excluded.expires_at, answered=NULL"
)
CLOSE_OFFER = "UPDATE twoway_offers SET answered = ? WHERE msisdn = ? AND campaign_id = ?"
INSERT_CODE = "INSERT INTO twoway_subcodes (sub_code, campaign_id, allocated_at) VALUES (?,?,?)"
END_CODE = "UPDATE twoway_subcodes SET ended_at = ? WHERE campaign_id = ? AND ended_at IS NULL"
REOPEN_CODE = "UPDATE twoway_subcodes SET ended_at = NULL WHERE campaign_id = ?"
RELEASE_CODE = "DELETE FROM twoway_subcodes WHERE campaign_id = ?"


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def load(
    conn: sqlite3.Connection, now: float
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(sub-code rows, open offer rows) at start-up."""
    codes = conn.execute(
        "SELECT sub_code, campaign_id, allocated_at, ended_at FROM twoway_subcodes"
    ).fetchall()
    offers = conn.execute(
        "SELECT msisdn, campaign_id, contact_id, channel, offered_at, expires_at FROM"
        " twoway_offers WHERE answered IS NULL AND expires_at > ?",
        (now,),
    ).fetchall()
    conn.execute("DELETE FROM twoway_offers WHERE expires_at <= ?", (now,))
    conn.commit()
    return codes, offers


class TwowayStore:
    """Writes of the two-way tables: queued in the writer's next commit."""

    def __init__(self, writer: StateWriter) -> None:
        self.writer = writer

    async def open(self, now: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        await self.writer.setup(create)
        result: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = await self.writer.setup(
            load, now
        )
        return result

    def offer(self, row: tuple[Any, ...]) -> None:
        self.writer.append(UPSERT_OFFER, [row])

    async def close_offer(self, msisdn: str, campaign_id: str, answer: str) -> None:
        await self.writer.durable(self.writer.append(CLOSE_OFFER, [(answer, msisdn, campaign_id)]))

    async def allocate(self, sub_code: str, campaign_id: str, now: float) -> None:
        await self.writer.durable(self.writer.append(INSERT_CODE, [(sub_code, campaign_id, now)]))

    async def end(self, campaign_id: str, now: float) -> None:
        await self.writer.durable(self.writer.append(END_CODE, [(now, campaign_id)]))

    async def reopen(self, campaign_id: str) -> None:
        await self.writer.durable(self.writer.append(REOPEN_CODE, [(campaign_id,)]))

    async def release(self, campaign_id: str) -> None:
        await self.writer.durable(self.writer.append(RELEASE_CODE, [(campaign_id,)]))
