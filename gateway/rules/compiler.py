"""Compiling every running campaign's trigger into one index by event kind and location.

For an event, :meth:`RuleIndex.candidates` returns only the rules whose event kinds include
the event's kind *and* whose location contains the event's cell or LAC (or that have no
location; those with a ``peer`` condition of exact numbers are indexed by that number), with
a few dict lookups; conditions are then tested on those few rules only. The
index is immutable: a reload compiles a new one and the pipeline swaps it in one assignment.

:func:`naive_candidates` is the reference (every rule, every event), used by the property
test that the index finds exactly the same matches, and by the benchmark as the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.model import SignalEvent
from gateway.rules.conditions import MatchContext, Peer
from gateway.rules.trigger import Trigger


class CompiledRule:
    """One campaign's trigger, ready to test. ``payload`` is what the caller attached."""

    __slots__ = ("conditions", "payload", "trigger")

    def __init__(self, trigger: Trigger, payload: Any) -> None:
        self.trigger = trigger
        self.payload = payload
        self.conditions = trigger.conditions

    def passes(self, ctx: MatchContext) -> bool:
        for condition in self.conditions:
            if not condition.test(ctx):
                return False
        return True


class _KindIndex:
    __slots__ = ("anywhere", "by_cell", "by_lac", "by_peer")

    def __init__(self) -> None:
        self.by_cell: dict[int, list[CompiledRule]] = {}
        self.by_lac: dict[int, list[CompiledRule]] = {}
        self.by_peer: dict[str, list[CompiledRule]] = {}
        self.anywhere: list[CompiledRule] = []


def _peer_numbers(trigger: Trigger) -> frozenset[str] | None:
    """The exact numbers of a trigger's ``peer`` condition (None: no such condition, or prefixes)."""
    for c in trigger.conditions:
        if isinstance(c, Peer) and not c.prefixes:
            return c.numbers
    return None


class RuleIndex:
    """Rules indexed by event kind, then cell / LAC / anywhere."""

    def __init__(self, rules: Iterable[tuple[Trigger, Any]] = ()) -> None:
        self.rules: list[CompiledRule] = [CompiledRule(t, p) for t, p in rules]
        self._by_kind: dict[str, _KindIndex] = {}
        tracked: set[str] = set()
        self.longest_gap = 0.0
        for rule in self.rules:
            trigger = rule.trigger
            tracked |= trigger.tracked_kinds()
            if "call_end" in trigger.kinds:
                # a call_end's number is its call_start's (A-interface signaling carries it on
                # the set-up only): peer_region, long_distance and peer_* template fields read it
                tracked.add("call_start")
            for c in trigger.conditions:
                for attr in ("gap_at_least", "at_least", "within"):
                    value = getattr(c, attr, 0)
                    if isinstance(value, float) and value != float("inf"):
                        self.longest_gap = max(self.longest_gap, value)
            for kind in trigger.kinds:
                kix = self._by_kind.setdefault(kind, _KindIndex())
                if not trigger.located:
                    numbers = _peer_numbers(trigger)
                    if numbers is None:
                        kix.anywhere.append(rule)
                    else:  # "call to 12580 ended": indexed by the called number
                        for number in numbers:
                            kix.by_peer.setdefault(number, []).append(rule)
                    continue
                for lac in trigger.lacs:
                    kix.by_lac.setdefault(lac, []).append(rule)
                for cell in trigger.cells:
                    if (cell >> 16) not in trigger.lacs:  # else found through its LAC already
                        kix.by_cell.setdefault(cell, []).append(rule)
        self.tracked_kinds = frozenset(tracked)

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, event: SignalEvent) -> list[CompiledRule]:
        """The rules that can match ``event`` by kind and location (conditions not tested)."""
        kix = self._by_kind.get(event.kind)
        if kix is None:
            return []
        found = kix.anywhere
        if kix.by_peer and event.peer is not None:
            by_peer = kix.by_peer.get(event.peer)
            if by_peer:
                found = found + by_peer
        lac = event.lac
        if lac is not None:
            by_lac = kix.by_lac.get(lac)
            if by_lac:
                found = found + by_lac
            ci = event.ci
            if ci is not None:
                by_cell = kix.by_cell.get(((lac & 0xFFFF) << 16) | (ci & 0xFFFF))
                if by_cell:
                    found = found + by_cell
        return found

    def match(self, ctx: MatchContext) -> list[CompiledRule]:
        return [rule for rule in self.candidates(ctx.event) if rule.passes(ctx)]


def naive_candidates(rules: Sequence[CompiledRule], event: SignalEvent) -> list[CompiledRule]:
    """Every rule tested for kind and location one by one: the baseline."""
    found = []
    cell = (
        ((event.lac & 0xFFFF) << 16 | (event.ci & 0xFFFF))
        if event.lac is not None and event.ci is not None
        else None
    )
    for rule in rules:
        trigger = rule.trigger
        if event.kind not in trigger.kinds:
            continue
        if trigger.located:
            if event.lac is None:
                continue
            if event.lac not in trigger.lacs and (cell is None or cell not in trigger.cells):
                continue
        found.append(rule)
    return found
