"""Parsers of the built-in condition types: one ``[[trigger.conditions]]`` table each.

A parser reads its keys through the condition's :class:`~gateway.config_reader.TableReader`
(problems are recorded there with the dotted key, e.g. ``trigger.conditions[1].at_least``)
and returns the condition object of :mod:`gateway.rules.conditions`, or None after a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.config_reader import TableReader
from gateway.rules.conditions import (
    DAYS,
    EVENT_KINDS,
    Cause,
    Count,
    DayOfWeek,
    Dwell,
    HasItem,
    InTargetList,
    ParseContext,
    Peer,
    ProfileIn,
    ProfileRange,
    Sequence,
    Silence,
    TimeOfDay,
)
from gateway.rules.enriched import (
    CALL_DIRECTIONS,
    CALL_OUTCOMES,
    Capability,
    DirectionIn,
    HomeRegion,
    LongDistance,
    OutcomeIn,
    PeerRegion,
    ServiceCode,
    TalkTime,
    Visitor,
)

Parser = Callable[[TableReader, ParseContext, int], Any]


def clock_seconds(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or int(hh) > 24 or int(mm) > 59:
        return None
    if int(hh) == 24 and int(mm):  # 24:00 is midnight at the end of the day, 24:30 is nothing
        return None
    return int(hh) * 3600 + int(mm) * 60


def parse_time_of_day(r: TableReader, pc: ParseContext, n: int) -> Any:
    text = r.str("between")
    if text is None:
        return None
    start, sep, end = text.partition("-")
    a, b = clock_seconds(start), clock_seconds(end)
    if not sep or a is None or b is None or a == b:
        r.problem("between", f'expected "HH:MM-HH:MM" (e.g. "08:00-21:00"), got {text!r}')
        return None
    return TimeOfDay(*clock_window(a, b))


def clock_window(start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` seconds of day of a window; ``end < start`` wraps past midnight.

    24:00 is midnight: "24:00-08:00" starts at 0, and an end after the start stays as it is,
    so "00:00-24:00" is the whole day (not an empty window) and "22:00-24:00" its last hours.
    """
    start %= 86400
    return start, end if end > start else end % 86400


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
    peers = r.str_list("peer", ())
    if after is None or low is None or high is None or peers is None:
        return None
    if low > high:
        r.problem("gap_at_most", "must not be smaller than gap_at_least")
        return None
    return Sequence(after, low, high, frozenset(peers))


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


def _choices_parser(
    key: str, choices: tuple[str, ...], make: Callable[[frozenset[str]], Any]
) -> Parser:
    def parse(r: TableReader, pc: ParseContext, n: int) -> Any:
        values = r.str_list(key)
        if values is None:
            return None
        bad = [v for v in values if v not in choices]
        if bad or not values:
            r.problem(key, f"expected a list of {', '.join(choices)}; got {list(values)!r}")
            return None
        return make(frozenset(values))

    return parse


def parse_service_code(r: TableReader, pc: ParseContext, n: int) -> Any:
    codes = r.str_list("codes", ())
    prefixes = r.str_list("prefixes", ())
    if codes is None or prefixes is None:
        return None
    if not codes and not prefixes:
        r.problem("", 'service_code needs codes (e.g. ["*139#"]) or prefixes')
        return None
    return ServiceCode(frozenset(c.strip() for c in codes), tuple(p.strip() for p in prefixes))


def parse_talk_time(r: TableReader, pc: ParseContext, n: int) -> Any:
    low = r.duration("at_least", 0.0)
    high = r.duration("at_most", float("inf"))
    if low is None or high is None:
        return None
    if not r.has("at_least") and not r.has("at_most"):
        r.problem("", "talk_time needs at_least or at_most")
        return None
    if low > high:
        r.problem("at_most", "must not be smaller than at_least")
        return None
    return TalkTime(low, high)


def _scope(r: TableReader, default: str) -> str | None:
    scope: str | None = r.str("scope", default, choices=("province", "city"))
    return scope


def parse_visitor(r: TableReader, pc: ParseContext, n: int) -> Any:
    scope = _scope(r, "province")
    return None if scope is None else Visitor(scope)


def parse_long_distance(r: TableReader, pc: ParseContext, n: int) -> Any:
    scope = _scope(r, "city")
    return None if scope is None else LongDistance(scope)


def _region_parser(make: Callable[[frozenset[str], frozenset[str], bool], Any]) -> Parser:
    """``provinces``/``cities`` lists (either or both), ``negate`` for "not in"."""

    def parse(r: TableReader, pc: ParseContext, n: int) -> Any:
        from gateway.enrich.csvfile import region_name

        provinces = r.str_list("provinces", ())
        cities = r.str_list("cities", ())
        negate = r.bool("negate", False)
        if provinces is None or cities is None or negate is None:
            return None
        if not provinces and not cities:
            r.problem("", "needs provinces or cities (names as in the segments file)")
            return None
        return make(
            frozenset(map(region_name, provinces)), frozenset(map(region_name, cities)), negate
        )

    return parse


def parse_capability(r: TableReader, pc: ParseContext, n: int) -> Any:
    name = r.str("name")
    return None if name is None else Capability(name.strip().lower())


CONDITION_TYPES: Mapping[str, Parser] = {
    "time_of_day": parse_time_of_day,
    "day_of_week": parse_day_of_week,
    "profile": parse_profile,
    "has_product": _item_parser("products", "product"),
    "lacks_product": _item_parser("products", "product", negate=True),
    "capability": parse_capability,
    "tag": _item_parser("tags", "name"),
    "in_target_list": parse_target_list,
    "peer": parse_peer,
    "cause": parse_cause,
    "silence": parse_silence,
    "sequence": parse_sequence,
    "dwell": parse_dwell,
    "count": parse_count,
    "direction": _choices_parser("values", CALL_DIRECTIONS, DirectionIn),
    "outcome": _choices_parser("values", CALL_OUTCOMES, OutcomeIn),
    "talk_time": parse_talk_time,
    "service_code": parse_service_code,
    "visitor": parse_visitor,
    "home_region": _region_parser(HomeRegion),
    "peer_region": _region_parser(PeerRegion),
    "long_distance": parse_long_distance,
}
