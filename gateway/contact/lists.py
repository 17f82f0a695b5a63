"""Do-not-disturb lists and blacklists, by category, with atomic bulk replace.

Each list (a category, plus a channel or campaign class for the scoped opt-outs) is one
in-memory dict ``msisdn -> entry`` held by reference; the decision path does a dict lookup
per list. The SQLite table ``contact_list_entries`` is the authoritative copy, read at start.

Every MSISDN here is in the one E.164 form of :mod:`gateway.numbers`: the entrances (the
admin commands and :func:`parse_list_lines`) normalise it; the decision path compares strings.

Bulk replace (``gatewayctl dnd import``): the new list is written in ONE transaction (delete
the old rows, insert the new) and built as a new dict in the worker thread; only when both
are done is the reference swapped, in the event loop. A decision sees the old list or the
new one, never half of either.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

from gateway.contact.config import CATEGORIES, SCOPED_CATEGORIES
from gateway.model import ContactRequest
from gateway.numbers import NumberError, NumberPlan, active_plan, mask
from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS contact_list_entries (
    category TEXT NOT NULL,
    scope TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    source TEXT,
    reason TEXT,
    added_at REAL NOT NULL,
    expires_at REAL,
    PRIMARY KEY (category, scope, msisdn)
) WITHOUT ROWID;
"""

#: (source, reason, added_at, expires_at or None). A tuple: millions of them live in memory.
Entry = tuple[str, str, float, float | None]
ListKey = tuple[str, str]  # (category, scope); scope "" for unscoped categories


def validate_key(category: str, scope: str) -> None:
    if category not in CATEGORIES:
        raise ValueError(f"unknown list category {category!r}; use one of {', '.join(CATEGORIES)}")
    if category in SCOPED_CATEGORIES and not scope:
        raise ValueError(f"{category} needs a scope (--scope CHANNEL or CLASS)")
    if category not in SCOPED_CATEGORIES and scope:
        raise ValueError(f"{category} takes no scope")


class _ListMap(dict):  # type: ignore[type-arg]
    """The lists by key. Rebinding a list bumps ``version``, which invalidates the decision
    path's cache of which lists apply to a (channel, class) pair."""

    version = 0

    def __setitem__(self, key: ListKey, value: dict[str, Entry]) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def setdefault(self, key: ListKey, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: ListKey, *default: Any) -> Any:
        self.version += 1
        return super().pop(key, *default)


class ListStore:
    """In-memory do-not-disturb lists backed by SQLite. Mutations go through ``worker``."""

    def __init__(self, worker: SqliteWorker | None, *, clock: Any = time.time) -> None:
        self._worker = worker
        self._clock = clock
        self._lists: _ListMap = _ListMap()
        self._plans: dict[tuple[str, str, frozenset[str]], tuple[Any, ...]] = {}
        self._plans_version = -1

    # -- start-up ---------------------------------------------------------------------------

    @staticmethod
    def create_schema(conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)

    def load(self, conn: sqlite3.Connection) -> None:
        """Read every list (blocking: call in the worker thread or at start)."""
        lists: dict[ListKey, dict[str, Entry]] = {}
        for cat, scope, msisdn, source, reason, added, expires in conn.execute(
            "SELECT category, scope, msisdn, source, reason, added_at, expires_at FROM contact_list_entries"
        ):
            lists.setdefault((cat, scope), {})[msisdn] = (
                source or "",
                reason or "",
                added,
                expires,
            )
        self._lists = _ListMap(lists)
        self._lists.version = 1

    # -- the decision path ------------------------------------------------------------------

    def blocking(
        self, request: ContactRequest, now: float, exempt: frozenset[str]
    ) -> tuple[str, str, Entry] | None:
        """The first list entry that forbids this request: (category, scope, entry), or None."""
        lists = self._lists
        if self._plans_version != lists.version or self._plans_version < 0:
            self._plans, self._plans_version = {}, lists.version
        key = (request.channel, request.campaign_class, exempt)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(request.channel, request.campaign_class, exempt)
        msisdn = request.msisdn
        for category, scope, entries in plan:
            entry = entries.get(msisdn)
            if entry is not None and (entry[3] is None or entry[3] > now):
                return category, scope, entry
        return None

    def _plan(self, channel: str, campaign_class: str, exempt: frozenset[str]) -> tuple[Any, ...]:
        """The lists to look in for this channel and class, in check order (existing only)."""
        plan = []
        for category in CATEGORIES:  # in check order: the first hit is the reason given
            if category in exempt:
                continue
            if category == "opt_out_channel":
                scope = channel
            elif category == "opt_out_class":
                scope = campaign_class
            else:
                scope = ""
            found = self._lists.get((category, scope))
            if found is not None:
                plan.append((category, scope, found))
        return tuple(plan)

    def entries_for(self, msisdn: str) -> list[dict[str, Any]]:
        """Every live entry naming ``msisdn``, for ``dnd check``."""
        now = self._clock()
        out = []
        for (category, scope), entries in sorted(self._lists.items()):
            entry = entries.get(msisdn)
            if entry is not None and (entry[3] is None or entry[3] > now):
                out.append(
                    {
                        "category": category,
                        "scope": scope,
                        "source": entry[0],
                        "reason": entry[1],
                        "added_at": entry[2],
                        "expires_at": entry[3],
                    }
                )
        return out

    def size(self, category: str, scope: str = "") -> int:
        return len(self._lists.get((category, scope), {}))

    def sizes(self) -> dict[str, int]:
        return {f"{c}:{s}" if s else c: len(d) for (c, s), d in sorted(self._lists.items())}

    # -- changes ----------------------------------------------------------------------------

    async def add(
        self,
        category: str,
        msisdn: str,
        *,
        scope: str = "",
        source: str = "admin",
        reason: str = "",
        expires_at: float | None = None,
    ) -> None:
        validate_key(category, scope)
        if expires_at is not None and not math.isfinite(expires_at):
            raise ValueError("the expiry must be a finite time")
        entry: Entry = (source, reason, self._clock(), expires_at)
        if self._worker is not None:
            await self._worker.transaction(_upsert_rows, [(category, scope, msisdn, *entry)])
        self._lists.setdefault((category, scope), {})[msisdn] = entry

    async def remove(self, category: str, msisdn: str, *, scope: str = "") -> bool:
        validate_key(category, scope)
        if self._worker is not None:
            await self._worker.transaction(
                lambda c: c.execute(
                    "DELETE FROM contact_list_entries WHERE category=? AND scope=? AND msisdn=?",
                    (category, scope, msisdn),
                )
            )
        return self._lists.get((category, scope), {}).pop(msisdn, None) is not None

    async def replace(
        self,
        category: str,
        entries: Iterable[tuple[str, str, float | None]],
        *,
        scope: str = "",
        source: str = "import",
    ) -> int:
        """Atomically replace a whole list with ``(msisdn, reason, expires_at)`` items.

        Returns the new size. Readers see the old list until the new one is complete.
        """
        validate_key(category, scope)
        now = self._clock()
        items = list(entries)

        def build(conn: sqlite3.Connection | None) -> dict[str, Entry]:
            new = {m: (source, reason, now, expires) for m, reason, expires in items}
            if conn is not None:
                conn.execute(
                    "DELETE FROM contact_list_entries WHERE category=? AND scope=?",
                    (category, scope),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO contact_list_entries VALUES (?,?,?,?,?,?,?)",
                    ((category, scope, m, e[0], e[1], e[2], e[3]) for m, e in new.items()),
                )
            return new

        if self._worker is not None:
            new = await self._worker.transaction(build)
        else:
            new = build(None)
        self._lists[(category, scope)] = new  # the atomic swap
        return len(new)

    async def purge_expired(self) -> int:
        """Drop expired entries from memory and disk; returns how many."""
        now = self._clock()
        dropped = 0
        for key, entries in list(self._lists.items()):
            dead = [m for m, e in entries.items() if e[3] is not None and e[3] <= now]
            if dead:
                fresh = {m: e for m, e in entries.items() if e[3] is None or e[3] > now}
                self._lists[key] = fresh
                dropped += len(dead)
        if dropped and self._worker is not None:
            await self._worker.transaction(
                lambda c: c.execute(
                    "DELETE FROM contact_list_entries WHERE expires_at IS NOT NULL AND expires_at <= ?",
                    (now,),
                )
            )
        return dropped


def _upsert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany("INSERT OR REPLACE INTO contact_list_entries VALUES (?,?,?,?,?,?,?)", rows)


class ListFileError(ValueError):
    """A line of a list import that cannot be taken; the message names the line number and
    shows at most a masked excerpt of the number (never the line: the content may be anything
    the client sent)."""


def parse_list_lines(
    lines: Iterable[str], *, first_line: int = 1, plan: NumberPlan | None = None
) -> Iterator[tuple[str, str, float | None]]:
    """Lines ``MSISDN[,REASON[,EXPIRES_UNIX]]`` -> ``(E.164 msisdn, reason, expires_at)``.

    Blank lines and ``#`` comments are skipped. The number is normalised with ``plan`` (the
    active plan by default); the expiry must be a finite Unix time after 1970. Raises
    :class:`ListFileError` naming the first bad line (an import is all or nothing).
    """
    plan = plan or active_plan()
    for number, line in enumerate(lines, first_line):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",", 2)]
        try:
            msisdn = plan.normalise(parts[0])
        except NumberError as exc:
            raise ListFileError(f"line {number}: {mask(parts[0])}: {exc}") from None
        reason = parts[1] if len(parts) > 1 else ""
        expires = None
        if len(parts) > 2 and parts[2]:
            try:
                expires = float(parts[2])
            except ValueError:
                expires = math.nan
            if not math.isfinite(expires) or expires <= 0:
                raise ListFileError(
                    f"line {number}: the expiry (third field) must be a Unix time in seconds "
                    "after 1970, or empty for no expiry"
                )
        yield msisdn, reason, expires
