"""Subscriber status from the BOSS before a contact: a TTL cache and a trigger condition.

A campaign asks for it with a condition in its trigger::

    [[trigger.conditions]]
    type = "boss_status"
    status = ["active"]            # the BOSS's status values that may be contacted
    brands = ["gotone"]            # optional
    arrears = false                # optional: true = only in arrears, false = only not

The matcher runs on the hot path and may not wait for the BOSS, so the condition reads the
cache: a fresh answer decides; a subscriber not in the cache is *not* matched this time and
a lookup is queued (the next event of that subscriber finds the answer). A BOSS outage
therefore means no contact for the subscribers it would have to vouch for, never a stalled
pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from gateway.config_reader import TableReader
from gateway.numbers import active_plan


@attrs.define
class StatusCache:
    ttl: float = 600.0
    request: Callable[[str], bool] | None = None
    capacity: int = 1_000_000
    hits: int = 0
    misses: int = 0
    _entries: dict[str, tuple[float, Mapping[str, str] | None]] = attrs.field(factory=dict)
    _pending: set[str] = attrs.field(factory=set)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, msisdn: str, now: float) -> tuple[bool, Mapping[str, str] | None]:
        """(known, fields); fields None = the BOSS does not know the subscriber."""
        entry = self._entries.get(msisdn)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return True, entry[1]
        self.misses += 1
        if msisdn not in self._pending and self.request is not None and self.request(msisdn):
            self._pending.add(msisdn)
        return False, None

    def put(self, msisdn: str, fields: Mapping[str, str] | None, now: float) -> None:
        self._pending.discard(msisdn)
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # crude but bounded; a full cache only costs lookups
        self._entries[msisdn] = (now + self.ttl, fields)

    def forget_pending(self, msisdn: str) -> None:
        self._pending.discard(msisdn)


@attrs.frozen
class BossStatusCondition:
    """``test(event, subscriber)`` for :class:`gateway.rules.conditions.PluginCondition`."""

    cache: Callable[[], StatusCache | None]
    statuses: frozenset[str]
    brands: frozenset[str] = frozenset()
    arrears: bool | None = None

    def test(self, event: Any, subscriber: Any) -> bool:
        cache = self.cache()
        msisdn = getattr(subscriber, "msisdn", None) or getattr(event, "msisdn", None)
        if cache is None or not msisdn:
            return False
        try:
            key = active_plan().normalise(msisdn)
        except ValueError:  # NumberError: a number we cannot ask the BOSS about
            return False
        known, fields = cache.get(key, trio.current_time())
        return known and fields is not None and self.allows(fields)

    def allows(self, fields: Mapping[str, str]) -> bool:
        if self.statuses and fields.get("status") not in self.statuses:
            return False
        if self.brands and fields.get("brand") not in self.brands:
            return False
        if self.arrears is not None:
            owed = fields.get("arrears", "").strip().lower() in ("1", "true", "yes", "y")
            if owed != self.arrears:
                return False
        return True


def condition_factory(cache: Callable[[], StatusCache | None]) -> Callable[[TableReader], Any]:
    def parse(r: TableReader) -> BossStatusCondition:
        statuses = r.str_list("status", ["active"])
        brands = r.str_list("brands", ())
        arrears = r.bool("arrears", None)
        return BossStatusCondition(
            cache=cache,
            statuses=frozenset(statuses or ()),
            brands=frozenset(brands or ()),
            arrears=arrears,
        )

    return parse
