"""The daily execution report ("执行日报") to the analytics system, with its check file.

One data file per day, ``<prefix>_<YYYYMMDD>.txt``, records ``DAY|CAMPAIGN|CHANNEL|METRIC|DETAIL|COUNT``:

- ``contacts``, ``suppressed`` (DETAIL = the rule that refused), ``deferred``, ``control``:
  the day's decisions in the contact ledger, per campaign and channel;
- ``delivery`` (DETAIL = outbox state: delivered, undeliverable, expired...): the campaign's
  outbox entries by state, from :meth:`Outbox.delivery_counts`;
- ``reply``, ``accepted``, ``refused``, ``opt_out`` (CAMPAIGN ``-``): mobile-originated
  messages seen by the ``gateway_mo_message`` hook that day, per channel (counted in memory
  and added to the plugin's state when the report is written; a restart loses the day's
  unsaved counts: two-way SMS will own the durable answer records).

Written atomically (``.part``, fsync, rename, fsync of the directory) with its check file
(written last, so a reader that waits for the check file never sees half a report), then
pushed to every configured destination (FTP/SFTP/local) with retries and exponential
backoff; a push not done survives a restart (the ``report_files`` table) and is retried.
"""

from __future__ import annotations

import collections
import datetime as dt
import sqlite3
import zoneinfo
from pathlib import Path
from typing import Any

import attrs
import trio

from adapters.ifile.checkfile import FileTally
from adapters.ifile.transfer import write_atomically
from gateway.contact.ledger import first_seq_since
from gateway.model import MoMessage
from plugins.boss_files.config import ReportConfig, SourceConfig
from plugins.boss_files.state import FilesState

ACCEPT = frozenset({"Y", "YES", "是", "1"})
REFUSE = frozenset({"N", "NO", "否", "2"})
OPT_OUT = frozenset({"TD", "T", "0000", "退订", "QXTD"})


def classify(text: str) -> str:
    word = text.strip().upper()
    if word in ACCEPT:
        return "accepted"
    if word in REFUSE:
        return "refused"
    if word in OPT_OUT:
        return "opt_out"
    return "reply"


def ledger_counts(conn: sqlite3.Connection, start: float, end: float) -> list[tuple[Any, ...]]:
    """(campaign, channel, event, reason, n) of the decisions made in [start, end)."""
    seq = first_seq_since(conn, start)
    return conn.execute(
        "SELECT coalesce(campaign_id, '-'), coalesce(channel, '-'), event, "
        "CASE WHEN event = 'suppressed' THEN coalesce(reason, '') ELSE '' END, count(*) "
        "FROM contact_ledger WHERE seq >= ? AND at >= ? AND at < ? "
        "AND event IN ('allowed', 'suppressed', 'deferred', 'control') "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        (seq, start, end),
    ).fetchall()


METRIC = {
    "allowed": "contacts",
    "suppressed": "suppressed",
    "deferred": "deferred",
    "control": "control",
}


@attrs.define
class ReportWriter:
    gateway: Any
    config: ReportConfig
    state: FilesState
    work_dir: Path
    limiter: trio.CapacityLimiter
    answers: collections.Counter[tuple[str, str, str]] = attrs.field(factory=collections.Counter)
    failed_attempts: int = 0

    @property
    def outgoing(self) -> Path:
        return self.work_dir / "outgoing"

    def observe(self, message: MoMessage) -> None:
        day = self._day_of(message.received_at)
        self.answers[(day, message.channel, classify(message.text))] += 1

    def _zone(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.config.timezone)

    def _day_of(self, when: float) -> str:
        return dt.datetime.fromtimestamp(when, self._zone()).strftime("%Y%m%d")

    def _bounds(self, day: str) -> tuple[float, float]:
        start = dt.datetime.strptime(day, "%Y%m%d").replace(tzinfo=self._zone())
        return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()

    async def lines(self, day: str) -> list[tuple[str, ...]]:
        start, end = self._bounds(day)
        out: list[tuple[str, ...]] = []
        campaigns: set[str] = set()
        ledger = self.gateway.ledger
        if ledger is not None:
            for campaign, channel, event, reason, n in await ledger.worker.run(
                ledger_counts, start, end
            ):
                out.append((day, campaign, channel, METRIC[event], reason, str(n)))
                campaigns.add(campaign)
        outbox = self.gateway.outbox
        if outbox is not None:
            for campaign in sorted(campaigns - {"-"}):
                counts = await outbox.delivery_counts(campaign)
                for state, n in sorted(counts.items()):
                    out.append((day, campaign, "-", "delivery", state, str(n)))
        for (answer_day, channel, kind), n in sorted(self.answers.items()):
            if answer_day == day:
                out.append((day, "-", channel, kind, "", str(n)))
        return out

    async def write(self, day: str | None = None) -> str:
        """Write the report of ``day`` (YYYYMMDD; default yesterday) and its check file."""
        if day is None:
            now = dt.datetime.now(self._zone())
            day = (now - dt.timedelta(days=1)).strftime("%Y%m%d")
        dt.datetime.strptime(day, "%Y%m%d")  # ValueError on a bad day
        rows = await self.lines(day)
        cfg = self.config
        data = "".join(cfg.separator.join(r) + "\n" for r in rows).encode(cfg.encoding)
        name = f"{cfg.prefix}_{day}.txt"
        tally = FileTally(algorithm=cfg.checksum)
        tally.feed(data)
        check = tally.check_file(name).render(separator="|")
        self.outgoing.mkdir(parents=True, exist_ok=True)

        def write() -> None:
            write_atomically(self.outgoing / name, data)
            write_atomically(self.outgoing / (name + ".chk"), check)

        await trio.to_thread.run_sync(write, limiter=self.limiter)
        await self.state.report_written(name, day)
        self.gateway.logger(plugin="boss_files").info(
            "boss_files.report_written", file=name, records=len(rows)
        )
        return name

    async def push_pending(self) -> int:
        """Push every written report to every destination it has not reached; how many pushes."""
        from plugins.boss_files.inbound import open_directory

        done = 0
        for name, pushed in sorted((await self.state.report_pushes()).items()):
            for destination in self.config.destinations:
                if destination.label in pushed:
                    continue
                if await self._push(open_directory(destination, self.limiter), destination, name):
                    await self.state.report_pushed(name, destination.label)
                    done += 1
        return done

    async def _push(self, directory: Any, destination: SourceConfig, name: str) -> bool:
        log = self.gateway.logger(plugin="boss_files").bind(
            file=name, destination=destination.label
        )
        delay = self.config.backoff
        for attempt in range(self.config.retries + 1):
            try:
                await directory.put(self.outgoing / name, name)
                await directory.put(self.outgoing / (name + ".chk"), name + ".chk")
            except Exception as exc:
                self.failed_attempts += 1  # retried below, then left for the next round
                log.warning("boss_files.push_failed", attempt=attempt + 1, error=str(exc))
                if attempt == self.config.retries:
                    return False
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max)
                continue
            log.info("boss_files.report_pushed")
            return True
        return False

    def _next_run(self, now: dt.datetime) -> dt.datetime:
        hour, minute = map(int, self.config.at.split(":"))
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + dt.timedelta(days=1)

    async def serve(self) -> None:
        log = self.gateway.logger(plugin="boss_files")
        while True:
            try:
                await self.push_pending()
            except Exception as exc:
                log.error("boss_files.push_failed", error=str(exc))
            now = dt.datetime.now(self._zone())
            await trio.sleep((self._next_run(now) - now).total_seconds())
            try:
                await self.write()
            except Exception as exc:
                log.error("boss_files.report_failed", error=str(exc))
