"""Parsing one campaign's ``[trigger]`` table into a :class:`Trigger` (see docs/rules.md).

::

    [trigger]
    events = ["location_update", "periodic_update", "cell_change"]
    areas = ["airport"]          # named areas, and/or cells = ["4101-1001"], lacs = [4101]

    [[trigger.conditions]]
    type = "dwell"
    at_least = "30m"

Every problem is recorded on the reader with its dotted key (``trigger.conditions[1].at_least``)
so the campaign loader can report them all with the file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader, did_you_mean
from gateway.rules.areas import Area, read_cells_and_lacs
from gateway.rules.conditions import EVENT_KINDS, ParseContext, PluginCondition
from gateway.rules.parsers import CONDITION_TYPES


@attrs.frozen(kw_only=True)
class Trigger:
    kinds: frozenset[str]
    cells: frozenset[int] = frozenset()
    lacs: frozenset[int] = frozenset()
    areas: tuple[str, ...] = ()
    #: stateless conditions first, then stateful ones, in file order within each group
    conditions: tuple[Any, ...] = ()

    @property
    def located(self) -> bool:
        return bool(self.cells or self.lacs)

    def inside(self, packed_cell: int) -> bool:
        return packed_cell in self.cells or (packed_cell >> 16) in self.lacs

    def tracked_kinds(self) -> set[str]:
        """Event kinds whose last time sequence conditions read."""
        return {c.after for c in self.conditions if hasattr(c, "after")}


def parse_trigger(
    reader: TableReader,
    *,
    areas: Mapping[str, Area],
    campaign_id: str,
    target_list: frozenset[int] | None = None,
    plugin_types: Mapping[str, Any] | None = None,
) -> Trigger | None:
    """Parse ``reader`` (the ``[trigger]`` table). Problems go to the reader; None if any."""
    kinds = reader.str_list("events")
    if kinds is not None:
        for i, kind in enumerate(kinds):
            if kind not in EVENT_KINDS:
                reader.problem(
                    f"events[{i}]", f"unknown event kind {kind!r}{did_you_mean(kind, EVENT_KINDS)}"
                )
        if not kinds:
            reader.problem("events", "needs at least one event kind")
    cells, lacs = read_cells_and_lacs(reader)
    area_names = reader.str_list("areas", ())
    all_cells, all_lacs = set(cells), set(lacs)
    for i, name in enumerate(area_names or ()):
        area = areas.get(name)
        if area is None:
            known = sorted(areas)
            reader.problem(
                f"areas[{i}]",
                f"unknown area {name!r}{did_you_mean(name, known)} (areas defined: {', '.join(known) or 'none'})",
            )
            continue
        all_cells |= area.cells
        all_lacs |= area.lacs
    cells_f, lacs_f = frozenset(all_cells), frozenset(all_lacs)
    located = bool(cells_f or lacs_f)

    def inside(packed: int) -> bool:
        return packed in cells_f or (packed >> 16) in lacs_f

    pc = ParseContext(
        location=inside if located else None, target_list=target_list, campaign_id=campaign_id
    )
    types: dict[str, Any] = dict(CONDITION_TYPES)
    plugin_types = dict(plugin_types or {})
    conditions: list[Any] = []
    for n, sub in enumerate(reader.tables("conditions")):
        name = sub.str("type")
        if name is None:
            continue
        if name in types:
            cond = types[name](sub, pc, n)
        elif name in plugin_types:
            try:
                cond = PluginCondition(name, plugin_types[name](sub))
            except Exception as exc:  # a plugin's own validation message
                sub.problem("", f"condition type {name!r}: {exc}")
                cond = None
        else:
            known = sorted(types) + sorted(plugin_types)
            sub.problem("type", f"unknown condition type {name!r}{did_you_mean(name, known)}")
            continue
        sub.check_unknown()
        if cond is not None:
            conditions.append(cond)
    reader.check_unknown()
    if kinds is None or not reader.ok:
        return None
    ordered = tuple(c for c in conditions if not c.stateful) + tuple(
        c for c in conditions if c.stateful
    )
    return Trigger(
        kinds=frozenset(kinds),
        cells=cells_f,
        lacs=lacs_f,
        areas=tuple(area_names or ()),
        conditions=ordered,
    )
