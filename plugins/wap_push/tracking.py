"""Click tracking: a short link per contact, served by the core's HTTP host, that records the
click and redirects (302) to the real href.

Where the records live: table ``wap_push_links`` in the state database (written through the
outbox's state writer, so one writer and group commit as everywhere else): token, contact,
subscriber, campaign, real href, clicks and the first click's time. The token is stored
before the push is sent (a resend after a crash reuses it). The first click of a contact is
also written to the contact ledger as event ``clicked`` (reason ``wap_push_click``): that
row is the response the campaign report counts (``clicked``), beside the decisions of the
same contact. Later clicks only raise the link's counter.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Any
from urllib.parse import quote

import structlog

from gateway.contracts import HttpRequest, HttpResponse

SCHEMA = """
CREATE TABLE IF NOT EXISTS wap_push_links (
    token TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL UNIQUE,
    msisdn TEXT NOT NULL,
    campaign_id TEXT,
    channel TEXT NOT NULL,
    href TEXT NOT NULL,
    created_at REAL NOT NULL,
    clicks INTEGER NOT NULL DEFAULT 0,
    first_click_at REAL
);
"""
TOKEN_BYTES = 6  # 8 URL-safe characters, 48 random bits: not guessable, short in the SMS


def _links(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[str]:
    conn.executemany(
        "INSERT OR IGNORE INTO wap_push_links"
        " (token, contact_id, msisdn, campaign_id, channel, href, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    out = []
    for row in rows:  # the stored token: a resend after a crash reuses the first one
        (token,) = conn.execute(
            "SELECT token FROM wap_push_links WHERE contact_id = ?", (row[1],)
        ).fetchone()
        out.append(str(token))
    return out


def _click(conn: sqlite3.Connection, token: str, now: float) -> tuple[Any, ...] | None:
    found = conn.execute(
        "SELECT contact_id, msisdn, campaign_id, channel, href, clicks"
        " FROM wap_push_links WHERE token = ?",
        (token,),
    ).fetchone()
    if found is None:
        return None
    conn.execute(
        "UPDATE wap_push_links SET clicks = clicks + 1,"
        " first_click_at = COALESCE(first_click_at, ?) WHERE token = ?",
        (now, token),
    )
    return tuple(found)


class LinkTracker:
    """Makes tracking links (channel side) and serves them (HTTP side)."""

    def __init__(self, gateway: Any, *, base_url: str) -> None:
        self.gateway = gateway
        self.base_url = base_url
        self.stats = {"links": 0, "clicks": 0, "first_clicks": 0, "unknown_links": 0}
        self._ready = False

    def _writer(self) -> Any:
        outbox = self.gateway.outbox
        writer = getattr(outbox, "writer", None)
        if writer is None:
            raise RuntimeError("click tracking needs the state database (gateway.outbox.writer)")
        return writer

    async def open(self) -> None:
        """Create the table (idempotent)."""
        if not self._ready:
            await self._writer().setup(lambda conn: conn.executescript(SCHEMA))
            self._ready = True

    async def links_for(self, pairs: list[tuple[Any, str]]) -> list[str]:
        """The tracking URLs of ``(message, href)`` pairs, durable before this returns (one
        group commit for the whole batch)."""
        if not pairs:
            return []
        await self.open()
        now = time.time()
        rows = [
            (
                secrets.token_urlsafe(TOKEN_BYTES),
                m.contact_id,
                m.msisdn,
                m.campaign_id,
                m.channel,
                href,
                now,
            )
            for m, href in pairs
        ]
        tokens = await self._writer().call(_links, rows)
        self.stats["links"] += len(tokens)
        return [f"{self.base_url}?t={quote(t)}" for t in tokens]

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """GET <tracking path>?t=TOKEN: record the click, 302 to the real href."""
        token = request.query.get("t", "")
        if not token or len(token) > 64:
            return HttpResponse(status=400, body=b"missing link token\n")
        await self.open()
        now = time.time()
        found = await self._writer().call(_click, token, now)
        if found is None:
            self.stats["unknown_links"] += 1
            return HttpResponse(status=404, body=b"unknown link\n")
        contact_id, msisdn, campaign_id, channel, href, clicks = found
        self.stats["clicks"] += 1
        if clicks == 0:
            self.stats["first_clicks"] += 1
            ledger = self.gateway.ledger
            if ledger is not None:
                batch = ledger.append(
                    (
                        now,
                        "clicked",
                        contact_id,
                        msisdn,
                        campaign_id,
                        channel,
                        None,
                        None,
                        "wap_push_click",
                        None,
                        None,
                        None,
                        None,
                    )
                )
                await ledger.durable(batch)
            structlog.get_logger().info(
                "wap_push.clicked", contact_id=contact_id, msisdn=msisdn, campaign=campaign_id
            )
        # non-ASCII in the href is percent-encoded (a header is latin-1; RFC 3986 3.1)
        location = quote(href, safe=":/?#[]@!$&'()*+,;=%~")
        return HttpResponse(status=302, headers={"location": location}, body=b"")
