"""Do-not-disturb lists shared through Redis, mirrored in every node's memory.

In Redis mode the lists live in Redis, so that an entry added on one node (or a bulk import)
applies on all. Decisions still read the in-memory mirror of :class:`ListStore` (a dict
lookup per list, no round trip); each node keeps its mirror in step by following a change
stream.

Keys (``P`` = the ``redis_prefix``):

- ``P:lists:gen``: hash ``category FS scope`` -> the current generation of that list.
- ``P:list:<category>:<scope>:<gen>``: hash MSISDN -> ``source FS reason FS added FS expires``.
- ``P:lists:changes``: stream of ``add`` / ``remove`` / ``replace`` events (capped length).

Bulk replace writes the whole new list under a new generation, then switches the
generation in one HSET and announces it: every node loads the new generation beside the old
one and swaps its reference at once, so a node sees the old list or the new one, never half.
Nodes switch within one ``list_sync_interval`` of each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import structlog
import trio
import trio.lowlevel

from gateway.contact.lists import Entry, ListKey, ListStore, validate_key
from gateway.contact.redis_scripts import FS

SCAN_COUNT = 10_000
WRITE_CHUNK = 10_000
STREAM_MAXLEN = 100_000


def _pack(entry: Entry) -> str:
    source, reason, added, expires = entry
    return FS.join((source, reason, repr(added), "" if expires is None else repr(expires)))


def _unpack(value: bytes) -> Entry:
    source, reason, added, expires = value.decode().split(FS)
    return (source, reason, float(added), float(expires) if expires else None)


class RedisListStore(ListStore):
    """A ListStore whose changes go to Redis and whose mirror follows the change stream.

    ``control`` (set after construction) provides ``_send(commands)`` and ``prefix``.
    """

    def __init__(self, *, clock: Any = time.time) -> None:
        super().__init__(None, clock=clock)
        self.control: Any = None
        self._gens: dict[ListKey, int] = {}
        self._last_id = "0-0"
        self.synced_changes = 0

    # -- keys -------------------------------------------------------------------------------

    @property
    def _p(self) -> str:
        return self.control.prefix

    def _list_key(self, key: ListKey, gen: int) -> str:
        return f"{self._p}:list:{key[0]}:{key[1]}:{gen}"

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        return await self.control._send(commands)

    # -- start-up and following -------------------------------------------------------------

    async def load_all(self) -> None:
        """Read every list's current generation (at start)."""
        (last,) = await self._send(
            [("XREVRANGE", f"{self._p}:lists:changes", "+", "-", "COUNT", 1)]
        )
        self._last_id = last[0][0].decode() if last else "0-0"
        (raw,) = await self._send([("HGETALL", f"{self._p}:lists:gen")])
        for field, gen in zip(raw[::2], raw[1::2], strict=True):
            category, scope = field.decode().split(FS)
            key = (category, scope)
            self._lists[key] = await self._load_generation(key, int(gen))
            self._gens[key] = int(gen)

    async def _load_generation(self, key: ListKey, gen: int) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        cursor = b"0"
        name = self._list_key(key, gen)
        while True:
            ((cursor, flat),) = await self._send([("HSCAN", name, cursor, "COUNT", SCAN_COUNT)])
            for m, v in zip(flat[::2], flat[1::2], strict=True):
                entries[m.decode()] = _unpack(v)
            if cursor == b"0":
                return entries
            await trio.lowlevel.checkpoint()  # let decisions run between chunks

    async def sync_once(self) -> int:
        """Apply the changes other nodes announced since the last call; returns how many."""
        stream = f"{self._p}:lists:changes"
        commands = [("XRANGE", stream, f"({self._last_id}", "+", "COUNT", 1000)]
        placed = self._last_id != "0-0"
        if placed:  # is our own last change still there?
            commands.append(("XRANGE", stream, self._last_id, self._last_id))
        replies = await self._send(commands)
        events = replies[0]
        if placed and not replies[1]:
            # Trimmed past us (MAXLEN, while this node was cut off) or the stream was lost:
            # changes may be missing, and a missed do-not-disturb entry must not be.
            structlog.get_logger().warning("contact.list_sync_reload", last_id=self._last_id)
            await self.load_all()
            return len(events)
        for event_id, fields in events:
            self._last_id = event_id.decode()
            data = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
            key = (data["category"], data["scope"])
            if data["op"] == "add":
                self._lists.setdefault(key, {})[data["msisdn"]] = _unpack(data["entry"].encode())
            elif data["op"] == "remove":
                self._lists.get(key, {}).pop(data["msisdn"], None)
            elif data["op"] == "replace" and int(data["gen"]) != self._gens.get(key):
                gen = int(data["gen"])
                new = await self._load_generation(key, gen)
                self._lists[key], self._gens[key] = new, gen  # the atomic swap, on this node
        self.synced_changes += len(events)
        return len(events)

    async def serve_sync(
        self,
        *,
        interval: float = 1.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        log = structlog.get_logger()
        while True:
            await trio.sleep(interval)
            try:
                await self.sync_once()
            except Exception as exc:  # Redis away: keep the mirror, retry next round
                log.warning("contact.list_sync_failed", error=str(exc))

    # -- changes ----------------------------------------------------------------------------

    async def _gen(self, key: ListKey) -> int:
        gen = self._gens.get(key)
        if gen is None:
            (current,) = await self._send([("HGET", f"{self._p}:lists:gen", FS.join(key))])
            if current is None:
                await self._send([("HSETNX", f"{self._p}:lists:gen", FS.join(key), 1)])
                (current,) = await self._send([("HGET", f"{self._p}:lists:gen", FS.join(key))])
            gen = self._gens[key] = int(current)
        return gen

    def _announce(self, **fields: Any) -> tuple[Any, ...]:
        flat: list[Any] = []
        for k, v in fields.items():
            flat += (k, str(v))
        return ("XADD", f"{self._p}:lists:changes", "MAXLEN", "~", STREAM_MAXLEN, "*", *flat)

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
        key = (category, scope)
        entry: Entry = (source, reason, self._clock(), expires_at)
        gen = await self._gen(key)
        await self._send(
            [
                ("HSET", self._list_key(key, gen), msisdn, _pack(entry)),
                self._announce(
                    op="add", category=category, scope=scope, msisdn=msisdn, entry=_pack(entry)
                ),
            ]
        )
        self._lists.setdefault(key, {})[msisdn] = entry

    async def remove(self, category: str, msisdn: str, *, scope: str = "") -> bool:
        validate_key(category, scope)
        key = (category, scope)
        gen = await self._gen(key)
        removed, _ = await self._send(
            [
                ("HDEL", self._list_key(key, gen), msisdn),
                self._announce(op="remove", category=category, scope=scope, msisdn=msisdn),
            ]
        )
        self._lists.get(key, {}).pop(msisdn, None)
        return bool(removed)

    async def replace(
        self,
        category: str,
        entries: Iterable[tuple[str, str, float | None]],
        *,
        scope: str = "",
        source: str = "import",
    ) -> int:
        """Write the new generation completely, then switch to it in one step."""
        validate_key(category, scope)
        key = (category, scope)
        now = self._clock()
        new = {m: (source, reason, now, expires) for m, reason, expires in entries}
        (gen,) = await self._send([("INCR", f"{self._p}:lists:next_gen")])
        gen += 1  # generation 1 is the implicit first one
        name = self._list_key(key, gen)
        items = list(new.items())
        for start in range(0, len(items), WRITE_CHUNK):
            flat: list[Any] = ["HSET", name]
            for m, e in items[start : start + WRITE_CHUNK]:
                flat += (m, _pack(e))
            await self._send([tuple(flat)])
        old = self._gens.get(key)
        await self._send(
            [
                ("HSET", f"{self._p}:lists:gen", FS.join(key), gen),
                self._announce(op="replace", category=category, scope=scope, gen=gen),
            ]
        )
        if old is not None and old != gen:
            await self._send([("UNLINK", self._list_key(key, old))])
        self._lists[key], self._gens[key] = new, gen
        return len(new)

    async def purge_expired(self) -> int:
        """Expired entries are ignored by decisions; drop them from this node's mirror only."""
        now = self._clock()
        dropped = 0
        for key, entries in list(self._lists.items()):
            dead = sum(1 for e in entries.values() if e[3] is not None and e[3] <= now)
            if dead:
                self._lists[key] = {m: e for m, e in entries.items() if e[3] is None or e[3] > now}
                dropped += dead
        return dropped
