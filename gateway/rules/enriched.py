"""Conditions on calls and on enrichment: direction, outcome, talk time, home and peer region,
visitor, long distance, handset capability (see docs/rules.md).

The region conditions read the number-segment table and the capability condition the TAC
table of ``ctx.enrich`` (:mod:`gateway.enrich`), looked up only when the condition is
tested: an event that no such rule sees costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from gateway.enrich.segments import Region
from gateway.enrich.tac import Handset
from gateway.model import CallDirection, EventKind
from gateway.model import CallOutcome as CallOutcomes
from gateway.rules.conditions import MatchContext

#: ``call_end`` outcomes and call directions (from the CC and BSSMAP causes: the decoder).
CALL_OUTCOMES = tuple(o.value for o in CallOutcomes)
CALL_DIRECTIONS = tuple(d.value for d in CallDirection)
#: How far back a ``call_end`` without a number looks for its ``call_start``'s number.
LONGEST_CALL_S = 4 * 3600.0
#: Content-template fields filled from the enrichment tables (see :func:`enriched_field`).
ENRICHED_FIELDS = (
    "home_province",
    "home_city",
    "peer_province",
    "peer_city",
    "handset_brand",
    "handset_model",
)


@attrs.frozen
class DirectionIn:
    """The call (``call_start``/``call_end``) was mobile-originated or mobile-terminated."""

    values: frozenset[str]
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return ctx.event.direction in self.values


@attrs.frozen
class OutcomeIn:
    """The ``call_end`` outcome is one of these (answered, rejected, busy, ...)."""

    values: frozenset[str]
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return ctx.event.outcome in self.values


@attrs.frozen
class TalkTime:
    """The call lasted between ``low`` and ``high`` seconds (``call_end`` duration)."""

    low: float = 0.0
    high: float = float("inf")
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        duration = ctx.event.duration
        return duration is not None and self.low <= duration <= self.high


@attrs.frozen
class ServiceCode:
    """The ``ussd`` string or the ``ss_change`` service code is one of these (``*139#``,
    ``cfu``), or starts with one of ``prefixes``."""

    codes: frozenset[str]
    prefixes: tuple[str, ...] = ()
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        code = ctx.event.service_code
        if not code:
            return False
        return code in self.codes or (bool(self.prefixes) and code.startswith(self.prefixes))


def subscriber_number(ctx: MatchContext) -> str | None:
    """The subscriber's E.164 number: the profile's, else the event's."""
    if ctx.row >= 0:
        return str(ctx.index.msisdn_col[ctx.row])  # type: ignore[union-attr]
    return ctx.event.msisdn


def call_peer(ctx: MatchContext) -> str | None:
    """The other party's number: the event's, or for a ``call_end`` without one, the number of
    this subscriber's ``call_start`` (A-interface signaling carries it on the set-up only)."""
    event = ctx.event
    if event.peer:
        return event.peer
    if event.kind is EventKind.CALL_END:
        found = ctx.state.last_kind.get(("call_start", ctx.subject), event.timestamp)
        if found is not None and event.timestamp - found[0] <= LONGEST_CALL_S:
            peer: str | None = found[1]
            return peer
    return None


def handset_of(ctx: MatchContext) -> Handset | None:
    """The handset by TAC: of the event's IMEI, else of the IMEI seen last for the subscriber."""
    enrich = ctx.enrich
    if enrich is None or not len(enrich.tac):
        return None
    event = ctx.event
    if event.imei:
        return enrich.tac.handset(event.imei)
    if ctx.row >= 0:
        return enrich.tac.handset_of_key(ctx.index.last_imei[ctx.row])  # type: ignore[union-attr]
    imei = ctx.state.last_imei.get(ctx.subject, event.timestamp)
    return enrich.tac.handset(imei) if imei else None


def _in_region(region: Region | None, provinces: frozenset[str], cities: frozenset[str]) -> bool:
    return region is not None and (region.province in provinces or region.city in cities)


@attrs.frozen
class Visitor:
    """The subscriber's home region (number segment) is not the gateway's local province
    (``scope = "city"``: not the local city)."""

    scope: str = "province"
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        enrich = ctx.enrich
        if enrich is None:
            return False
        return enrich.is_visitor(
            enrich.segments.region_of(subscriber_number(ctx)), scope=self.scope
        )


@attrs.frozen
class HomeRegion:
    """The subscriber's home region (number segment) is one of these provinces or cities."""

    provinces: frozenset[str]
    cities: frozenset[str]
    negate: bool = False
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        enrich = ctx.enrich
        if enrich is None:
            return False
        region = enrich.segments.region_of(subscriber_number(ctx))
        if region is None:
            return False  # unknown is neither in nor out
        return _in_region(region, self.provinces, self.cities) != self.negate


@attrs.frozen
class PeerRegion:
    """The other party's number (called, calling, SMS peer) belongs to these provinces or
    cities: a mobile number by its segment, a fixed line by its area code."""

    provinces: frozenset[str]
    cities: frozenset[str]
    negate: bool = False
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        enrich = ctx.enrich
        if enrich is None:
            return False
        region = enrich.segments.region_of_dialled(call_peer(ctx))
        if region is None:
            return False
        return _in_region(region, self.provinces, self.cities) != self.negate


@attrs.frozen
class LongDistance:
    """A call the subscriber made to a number of another city (``scope = "province"``: of
    another province) than the gateway's local one; mobile-terminated calls never are."""

    scope: str = "city"
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        enrich = ctx.enrich
        if enrich is None or ctx.event.direction == "mt":
            return False
        region = enrich.segments.region_of_dialled(call_peer(ctx))
        return enrich.is_long_distance(region, scope=self.scope)


def supports(ctx: MatchContext, names: Iterable[str]) -> bool:
    """The handset supports every one of ``names``: by TAC (see :func:`handset_of`), else by
    the profile's ``capabilities``. A subscriber with neither supports nothing."""
    handset = handset_of(ctx)
    if handset is not None:
        tac = ctx.enrich.tac  # type: ignore[union-attr]
        return all(handset.mask & tac.bit(name) for name in names)
    if ctx.row < 0:
        return False
    column = ctx.index.sets.get("capabilities")  # type: ignore[union-attr]
    if column is None:
        return False
    mask = column.masks[column.codes[ctx.row]]
    return all(mask & column.bits.get(name, 0) for name in names)


@attrs.frozen
class Capability:
    """The handset supports ``name``: by the TAC of the IMEI seen last in the signaling, and
    where that is unknown (no IMEI seen, TAC not in the table) by the profile's capabilities."""

    name: str
    stateful = False

    def test(self, ctx: MatchContext) -> bool:
        return supports(ctx, (self.name,))


def enriched_field(ctx: MatchContext, name: str) -> str | None:
    """One of :data:`ENRICHED_FIELDS` for the event of ``ctx``; None when unknown."""
    enrich = ctx.enrich
    if enrich is None:
        return None
    if name.startswith("handset_"):
        handset = handset_of(ctx)
        if handset is None:
            return None
        return handset.brand if name == "handset_brand" else handset.model
    if name.startswith("home_"):
        region = enrich.segments.region_of(subscriber_number(ctx))
    else:
        region = enrich.segments.region_of_dialled(call_peer(ctx))
    if region is None:
        return None
    return region.province if name.endswith("_province") else region.city
