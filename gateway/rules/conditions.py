"""The built-in condition types of the trigger-rule language (see docs/rules.md).

Each condition is parsed from one ``[[trigger.conditions]]`` table (``type = "..."`` plus its
own keys) by a parser of :mod:`gateway.rules.parsers`, and tested on the hot path with
``test(ctx) -> bool`` where ``ctx`` is the :class:`MatchContext` of one event. Stateless
conditions are tested first; stateful ones (dwell, count) update per-subscriber state only when
every other condition of the rule passed, so they count what the rule means.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from gateway.enrich.holder import Enrichment
from gateway.model import EventKind, SignalEvent
from gateway.numbers import active_plan
from gateway.profiles.index import ProfileIndex
from gateway.rules.state import BoundedState

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVENT_KINDS = tuple(k.value for k in EventKind)


class LocalClock:
    """Seconds of the local day and weekday of a UTC timestamp, with a cached UTC offset."""

    __slots__ = ("_offset", "_quarter", "tz")

    def __init__(self, tz: str = "UTC") -> None:
        self.tz = ZoneInfo(tz)
        self._quarter = -1
        self._offset = 0.0

    def local(self, ts: float) -> float:
        # UTC offsets change on a quarter hour at most (zones at +05:45, +09:30, +10:30 and
        # their DST ends fall on hh:15, hh:30 or hh:45 UTC), so the cache is per quarter hour
        quarter = int(ts // 900)
        if quarter != self._quarter:
            offset = dt.datetime.fromtimestamp(ts, self.tz).utcoffset()
            self._offset = offset.total_seconds() if offset else 0.0
            self._quarter = quarter
        return ts + self._offset

    def second_of_day(self, ts: float) -> int:
        return int(self.local(ts) % 86400)

    def weekday(self, ts: float) -> int:
        return (int(self.local(ts) // 86400) + 3) % 7  # 1970-01-01 was a Thursday


class MatcherState:
    """The per-subscriber state of every stateful condition, shared across rule reloads."""

    def __init__(self, *, capacity: int = 1_000_000, ttl: float = 8 * 86400) -> None:
        self.dwell = BoundedState(ttl=ttl, capacity=capacity)
        self.count = BoundedState(ttl=ttl, capacity=capacity)
        self.last_kind = BoundedState(ttl=ttl, capacity=capacity)  # (kind, subject) -> (time, peer)
        self.triggered = BoundedState(ttl=ttl, capacity=capacity)  # (campaign, subject) -> time
        #: subject -> IMEI last seen, for subscribers without a profile (the profile index
        #: learns it for the others): what ``capability`` reads when the event has no IMEI
        self.last_imei = BoundedState(ttl=ttl, capacity=capacity)

    def expire(self, now: float) -> int:
        return sum(
            s.expire(now)
            for s in (self.dwell, self.count, self.last_kind, self.triggered, self.last_imei)
        )

    def statistics(self) -> dict[str, Any]:
        return {
            name: getattr(self, name).statistics()
            for name in ("dwell", "count", "last_kind", "triggered", "last_imei")
        }


class MatchContext:
    """One event as the conditions see it. ``row`` is -1 for a subscriber without a profile.

    ``subject`` keys per-subscriber state (the row, or the IMSI/MSISDN string when unknown);
    ``prev_cell`` and ``prev_seen`` are the profile's learned attributes *before* this event;
    ``enrich`` the number-segment and TAC tables in force (None: none loaded).
    """

    __slots__ = (
        "clock",
        "enrich",
        "event",
        "index",
        "prev_cell",
        "prev_seen",
        "row",
        "state",
        "subject",
    )

    def __init__(
        self,
        event: SignalEvent,
        index: ProfileIndex | None,
        row: int,
        subject: Any,
        *,
        state: MatcherState,
        clock: LocalClock,
        prev_cell: int = 0,
        prev_seen: float = 0.0,
        enrich: Enrichment | None = None,
    ) -> None:
        self.enrich = enrich
        self.event = event
        self.index = index
        self.row = row
        self.subject = subject
        self.state = state
        self.clock = clock
        self.prev_cell = prev_cell
        self.prev_seen = prev_seen


@attrs.frozen(kw_only=True)
class ParseContext:
    """What a condition parser may need besides its own table."""

    #: Tests whether a packed cell is in the trigger's location (None: anywhere).
    location: Callable[[int], bool] | None = None
    target_list: frozenset[int] | None = None
    campaign_id: str = ""


# -- stateless conditions ------------------------------------------------------------------


@attrs.frozen
class TimeOfDay:
    start: int
    end: int
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        s = ctx.clock.second_of_day(ctx.event.timestamp)
        return (
            self.start <= s < self.end
            if self.start <= self.end
            else s >= self.start or s < self.end
        )


@attrs.frozen
class DayOfWeek:
    days: frozenset[int]
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return ctx.clock.weekday(ctx.event.timestamp) in self.days


@attrs.frozen
class ProfileIn:
    """``equals``/``in``/``not_in`` on a single-valued attribute; overlap on a set-valued one."""

    attribute: str
    values: frozenset[str]
    negate: bool = False
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        if ctx.row < 0:
            return False
        index = ctx.index
        found = index.values.get(self.attribute)
        if found is not None:
            hit = found[0].values[found[1][ctx.row]] in self.values
        else:
            column = index.sets.get(self.attribute)
            if column is None:
                return self.negate
            hit = bool(
                column.masks[column.codes[ctx.row]] & sum(column.bit(v) for v in self.values)
            )
        return hit != self.negate


@attrs.frozen
class ProfileRange:
    attribute: str
    low: float
    high: float
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        if ctx.row < 0:
            return False
        found = ctx.index.values.get(self.attribute)
        if found is None:
            return False
        try:
            value = float(found[0].values[found[1][ctx.row]])
        except ValueError:  # empty or not a number: outside any range
            return False
        return self.low <= value <= self.high


@attrs.frozen
class HasItem:
    """has_product / lacks_product / capability / tag on a set-valued column."""

    column: str
    item: str
    negate: bool = False
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        if ctx.row < 0:
            return False
        column = ctx.index.sets.get(self.column)
        if column is None:
            return self.negate
        return (
            bool(column.masks[column.codes[ctx.row]] & column.bits.get(self.item, 0)) != self.negate
        )


@attrs.frozen
class InTargetList:
    members: frozenset[int]
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        if ctx.row >= 0:
            return ctx.index.msisdn_col[ctx.row] in self.members
        return active_plan().key(ctx.event.msisdn) in self.members  # E.164, as the list


@attrs.frozen
class Peer:
    numbers: frozenset[str]
    prefixes: tuple[str, ...] = ()
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        peer = ctx.event.peer
        if not peer:
            return False
        return peer in self.numbers or (bool(self.prefixes) and peer.startswith(self.prefixes))


@attrs.frozen
class Cause:
    values: frozenset[int]
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return ctx.event.cause in self.values


@attrs.frozen
class Silence:
    """Nothing seen from the subscriber for at least ``at_least`` seconds before this event."""

    at_least: float
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return ctx.prev_seen > 0 and ctx.event.timestamp - ctx.prev_seen >= self.at_least


@attrs.frozen
class Sequence:
    """This event follows an event of kind ``after`` with a gap in [gap_at_least, gap_at_most].

    With ``peers``, that earlier event must also have had one of these peers: "a call to 12580
    ended" is a ``call_end`` after a ``call_start`` to 12580 (A-interface signaling carries the
    called number on the call set-up only).
    """

    after: str
    gap_at_least: float = 0.0
    gap_at_most: float = float("inf")
    peers: frozenset[str] = frozenset()
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        found = ctx.state.last_kind.get((self.after, ctx.subject), ctx.event.timestamp)
        if found is None:
            return False
        then, peer = found
        if self.peers and peer not in self.peers:
            return False
        gap = ctx.event.timestamp - then
        return self.gap_at_least <= gap <= self.gap_at_most


# -- stateful conditions --------------------------------------------------------------------


@attrs.frozen
class Dwell:
    """In the trigger's location for at least ``at_least`` seconds (seen again after that).

    The stay starts at the first event in the location; it continues while the subscriber's
    previous known cell was inside and no gap longer than ``max_gap`` passed between events.
    """

    slot: tuple[str, int]
    at_least: float
    max_gap: float
    inside: Callable[[int], bool]
    stateful = True

    def test(self, ctx: MatchContext) -> bool:
        now = ctx.event.timestamp
        key = (self.slot, ctx.subject)
        found = ctx.state.dwell.get(key, now)
        continuing = (
            found is not None
            and now - found[1] <= self.max_gap
            and (ctx.prev_cell == 0 or self.inside(ctx.prev_cell))
        )
        entered = found[0] if continuing else now
        ctx.state.dwell.put(key, (entered, now), now)
        return now - entered >= self.at_least


@attrs.frozen
class Count:
    """At least ``at_least`` events passing the rule within ``within`` seconds."""

    slot: tuple[str, int]
    at_least: int
    within: float
    stateful = True

    def test(self, ctx: MatchContext) -> bool:
        now = ctx.event.timestamp
        key = (self.slot, ctx.subject)
        times = ctx.state.count.get(key, now) or ()
        times = (*(t for t in times if now - t < self.within), now)
        if len(times) >= self.at_least:
            ctx.state.count.pop(key)  # start counting again after a match
            return True
        ctx.state.count.put(key, times, now)
        return False


@attrs.frozen
class PluginCondition:
    """A condition type added through ``gateway_condition_types``: ``test(event, subscriber)``."""

    name: str
    impl: Any
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        subscriber = ctx.index.subscriber(ctx.row) if ctx.row >= 0 else None
        return bool(self.impl.test(ctx.event, subscriber))
