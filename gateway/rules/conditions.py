"""The built-in condition types of the trigger-rule language (see docs/rules.md).

Each condition is parsed from one ``[[trigger.conditions]]`` table (``type = "..."`` plus its
own keys) by a parser registered in :data:`CONDITION_TYPES`, and tested on the hot path with
``test(ctx) -> bool`` where ``ctx`` is the :class:`MatchContext` of one event. Stateless
conditions are tested first; stateful ones (dwell, count) update per-subscriber state only when
every other condition of the rule passed, so they count what the rule means.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from gateway.config_reader import TableReader
from gateway.model import EventKind, SignalEvent
from gateway.profiles.index import ProfileIndex, digits_key
from gateway.rules.state import BoundedState

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVENT_KINDS = tuple(k.value for k in EventKind)


class LocalClock:
    """Seconds of the local day and weekday of a UTC timestamp, with a cached UTC offset."""

    __slots__ = ("_hour", "_offset", "tz")

    def __init__(self, tz: str = "UTC") -> None:
        self.tz = ZoneInfo(tz)
        self._hour = -1
        self._offset = 0.0

    def local(self, ts: float) -> float:
        hour = int(ts // 3600)
        if hour != self._hour:  # offsets change at most on the hour
            offset = dt.datetime.fromtimestamp(ts, self.tz).utcoffset()
            self._offset = offset.total_seconds() if offset else 0.0
            self._hour = hour
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
        self.last_kind = BoundedState(ttl=ttl, capacity=capacity)  # (kind, subject) -> time
        self.triggered = BoundedState(ttl=ttl, capacity=capacity)  # (campaign, subject) -> time

    def expire(self, now: float) -> int:
        return sum(s.expire(now) for s in (self.dwell, self.count, self.last_kind, self.triggered))

    def statistics(self) -> dict[str, Any]:
        return {
            name: getattr(self, name).statistics()
            for name in ("dwell", "count", "last_kind", "triggered")
        }


class MatchContext:
    """One event as the conditions see it. ``row`` is -1 for a subscriber without a profile.

    ``subject`` keys per-subscriber state (the row, or the IMSI/MSISDN string when unknown);
    ``prev_cell`` and ``prev_seen`` are the profile's learned attributes *before* this event.
    """

    __slots__ = ("clock", "event", "index", "prev_cell", "prev_seen", "row", "state", "subject")

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
    ) -> None:
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
        return digits_key(ctx.event.msisdn) in self.members


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
    """This event follows an event of kind ``after`` with a gap in [gap_at_least, gap_at_most]."""

    after: str
    gap_at_least: float = 0.0
    gap_at_most: float = float("inf")
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        then = ctx.state.last_kind.get((self.after, ctx.subject), ctx.event.timestamp)
        if then is None:
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


# -- parsers --------------------------------------------------------------------------------

Parser = Callable[[TableReader, ParseContext, int], Any]


def _clock(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or int(hh) > 24 or int(mm) > 59:
        return None
    return int(hh) * 3600 + int(mm) * 60


def parse_time_of_day(r: TableReader, pc: ParseContext, n: int) -> Any:
    text = r.str("between")
    if text is None:
        return None
    start, sep, end = text.partition("-")
    a, b = _clock(start), _clock(end)
    if not sep or a is None or b is None or a == b:
        r.problem("between", f'expected "HH:MM-HH:MM" (e.g. "08:00-21:00"), got {text!r}')
        return None
    return TimeOfDay(a, b % 86400)


def parse_day_of_week(r: TableReader, pc: ParseContext, n: int) -> Any:
    days = r.str_list("days")
    if days is None:
        return None
    bad = [d for d in days if d.lower()[:3] not in DAYS]
    if bad or not days:
        r.problem("days", f"expected day names from {', '.join(DAYS)}; got {list(days)!r}")
        return None
    return DayOfWeek(frozenset(DAYS.index(d.lower()[:3]) for d in days))


def parse_profile(r: TableReader, pc: ParseContext, n: int) -> Any:
    from gateway.profiles.columns import SET_COLUMNS, VALUE_COLUMNS

    attribute = r.str("attribute", choices=VALUE_COLUMNS + SET_COLUMNS)
    ops = [op for op in ("equals", "in", "not_in", "range") if r.has(op)]
    if len(ops) != 1:
        r.problem("", "needs exactly one of equals, in, not_in, range")
        for op in ("equals", "in", "not_in", "range"):
            r.raw(op, None)
        return None
    op = ops[0]
    if attribute is None:
        r.raw(op, None)
        return None
    if op == "equals":
        value = r.str("equals")
        return None if value is None else ProfileIn(attribute, frozenset([value]))
    if op in ("in", "not_in"):
        values = r.str_list(op)
        return (
            None
            if values is None
            else ProfileIn(attribute, frozenset(values), negate=op == "not_in")
        )
    bounds = r.raw("range")
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds)
        or bounds[0] > bounds[1]
    ):
        r.problem("range", f"expected [low, high] numbers with low <= high, got {bounds!r}")
        return None
    return ProfileRange(attribute, float(bounds[0]), float(bounds[1]))


def _item_parser(column: str, key: str, negate: bool = False) -> Parser:
    def parse(r: TableReader, pc: ParseContext, n: int) -> Any:
        item = r.str(key)
        return None if item is None else HasItem(column, item, negate)

    return parse


def parse_target_list(r: TableReader, pc: ParseContext, n: int) -> Any:
    if pc.target_list is None:
        r.problem("type", "in_target_list needs the campaign's target.list file")
        return None
    return InTargetList(pc.target_list)


def parse_peer(r: TableReader, pc: ParseContext, n: int) -> Any:
    numbers = r.str_list("numbers", ())
    prefixes = r.str_list("prefixes", ())
    if numbers is None or prefixes is None:
        return None
    if not numbers and not prefixes:
        r.problem("", "peer needs numbers or prefixes")
        return None
    return Peer(frozenset(numbers), tuple(prefixes))


def parse_cause(r: TableReader, pc: ParseContext, n: int) -> Any:
    raw = r.raw("values")
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(v, int) and 0 <= v <= 127 for v in raw)
    ):
        r.problem("values", f"expected a list of release cause values 0-127, got {raw!r}")
        return None
    return Cause(frozenset(raw))


def parse_silence(r: TableReader, pc: ParseContext, n: int) -> Any:
    at_least = r.duration("at_least", min=1)
    return None if at_least is None else Silence(at_least)


def parse_sequence(r: TableReader, pc: ParseContext, n: int) -> Any:
    after = r.str("after", choices=EVENT_KINDS)
    low = r.duration("gap_at_least", 0.0)
    high = r.duration("gap_at_most", float("inf"))
    if after is None or low is None or high is None:
        return None
    if low > high:
        r.problem("gap_at_most", "must not be smaller than gap_at_least")
        return None
    return Sequence(after, low, high)


def parse_dwell(r: TableReader, pc: ParseContext, n: int) -> Any:
    at_least = r.duration("at_least", min=1)
    max_gap = r.duration("max_gap", 4 * 3600.0, min=1)
    if pc.location is None:
        r.problem(
            "type", "dwell needs a location: set trigger.areas, trigger.cells or trigger.lacs"
        )
        return None
    if at_least is None or max_gap is None:
        return None
    return Dwell((pc.campaign_id, n), at_least, max_gap, pc.location)


def parse_count(r: TableReader, pc: ParseContext, n: int) -> Any:
    at_least = r.int("at_least", min=1)
    within = r.duration("within", min=1)
    if at_least is None or within is None:
        return None
    return Count((pc.campaign_id, n), at_least, within)


CONDITION_TYPES: Mapping[str, Parser] = {
    "time_of_day": parse_time_of_day,
    "day_of_week": parse_day_of_week,
    "profile": parse_profile,
    "has_product": _item_parser("products", "product"),
    "lacks_product": _item_parser("products", "product", negate=True),
    "capability": _item_parser("capabilities", "name"),
    "tag": _item_parser("tags", "name"),
    "in_target_list": parse_target_list,
    "peer": parse_peer,
    "cause": parse_cause,
    "silence": parse_silence,
    "sequence": parse_sequence,
    "dwell": parse_dwell,
    "count": parse_count,
}
