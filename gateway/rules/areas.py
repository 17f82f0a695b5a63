"""Named locations ("airport", "railway_station") defined once and used by many campaigns.

A cell is written ``"LAC-CI"`` (location area code, cell identity: both 0-65535) and packed
into one integer ``LAC << 16 | CI`` like the profile index does. An area is a set of cells
plus a set of whole location areas (LACs).

Areas file (TOML)::

    [areas.airport]
    cells = ["4101-1001", "4101-1002"]
    lacs = [4188]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs

from gateway.config_reader import TableReader
from gateway.errors import ConfigError, ConfigProblem


@attrs.frozen(kw_only=True)
class Area:
    name: str
    cells: frozenset[int] = frozenset()
    lacs: frozenset[int] = frozenset()

    def contains(self, packed_cell: int) -> bool:
        return packed_cell in self.cells or (packed_cell >> 16) in self.lacs


def parse_cell(text: str) -> int:
    """``"4101-1001"`` -> packed cell; raises ValueError with the expected form."""
    lac, sep, ci = text.partition("-")
    if not sep or not lac.strip().isdigit() or not ci.strip().isdigit():
        raise ValueError(f'expected a cell as "LAC-CI" (e.g. "4101-1001"), got {text!r}')
    lac_n, ci_n = int(lac), int(ci)
    if not (0 < lac_n <= 0xFFFF and 0 <= ci_n <= 0xFFFF):
        raise ValueError(f"LAC must be 1-65535 and CI 0-65535, got {text!r}")
    return lac_n << 16 | ci_n


def read_cells_and_lacs(reader: TableReader) -> tuple[frozenset[int], frozenset[int]]:
    """Read optional ``cells`` and ``lacs`` keys of a table, recording problems on ``reader``."""
    cells: set[int] = set()
    for i, text in enumerate(reader.str_list("cells", ())):
        try:
            cells.add(parse_cell(text))
        except ValueError as exc:
            reader.problem(f"cells[{i}]", str(exc))
    lacs: set[int] = set()
    raw = reader.raw("lacs", [])
    if not isinstance(raw, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in raw
    ):
        reader.problem("lacs", "must be a list of integers (location area codes)")
    else:
        for i, lac in enumerate(raw):
            if 0 < lac <= 0xFFFF:
                lacs.add(lac)
            else:
                reader.problem(f"lacs[{i}]", f"must be 1-65535, got {lac}")
    return frozenset(cells), frozenset(lacs)


def parse_areas(table: Mapping, key: str = "areas") -> dict[str, Area]:
    """Parse ``{name: {cells, lacs}}``; every problem is reported with its dotted key."""
    reader = TableReader(table, "")
    areas: dict[str, Area] = {}
    for name, sub in reader.subtables(key).items():
        cells, lacs = read_cells_and_lacs(sub)
        if not cells and not lacs:
            sub.problem("", "an area needs at least one of cells or lacs")
        sub.check_unknown()
        areas[name] = Area(name=name, cells=cells, lacs=lacs)
    reader.finish()
    return areas


def load_areas(path: Path | str) -> dict[str, Area]:
    """Read an areas file; ConfigError names the file and key of every problem."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(
            ConfigProblem("", f"cannot read: {exc.strerror or exc}", file=str(path))
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(ConfigProblem("", f"not valid TOML: {exc}", file=str(path))) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            ConfigProblem("", "not UTF-8 text; save the file as UTF-8", file=str(path))
        ) from exc
    try:
        return parse_areas(table)
    except ConfigError as exc:
        raise ConfigError([p.with_file(str(path)) for p in exc.problems]) from None
