"""Where a number belongs: the number-segment table (7-digit MSISDN prefix -> province, city).

Chinese mobile numbers are allocated to a home city in blocks of 10,000: the first 7 digits
of the national number (``1390100`` of ``13901001234``) name the city that issued it. The
operator maintains this table (segments are re-allocated every year) as a CSV file::

    prefix,province,city
    1390100,beijing,beijing
    1380200,shanghai,shanghai
    010,beijing,beijing          # a fixed-line area code (leading 0): adds to the built-in table

A prefix of 7 digits is a mobile segment; a prefix starting with ``0`` is a fixed-line area
code (``010``, ``0755``) and adds to or overrides the built-in table of
:mod:`gateway.enrich.area_codes`. Names are compared case-folded.

Lookup: numbers are E.164 (:mod:`gateway.numbers`); the country code of the active plan is
removed, a national mobile number (``mobile_length`` digits starting with a mobile prefix)
is looked up by its first 7 digits, anything else by its area code (2 to 4 digits). A number
of another country has no region. Segments live in one array of 16-bit region codes indexed
by ``prefix - lowest prefix`` (2 MB for all of 1000000-1999999): one index per lookup, no
per-segment objects.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from pathlib import Path

import attrs

from gateway.enrich.area_codes import AREA_CODES
from gateway.enrich.csvfile import TableFileError, read_rows, region_name
from gateway.numbers import NumberError, NumberPlan, active_plan

SEGMENT_DIGITS = 7
#: Carrier-select prefixes dialled before a long-distance number (IP long distance:
#: ``12593 010 6552 8888``); removed before the number is placed.
CARRIER_PREFIXES = ("12593", "17951", "17911", "17909", "10193", "11808")
#: Widest span of segment prefixes held in the array (every 7-digit prefix: 20 MB).
MAX_SPAN = 10**SEGMENT_DIGITS


@attrs.frozen(slots=True)
class Region:
    """A home region: province and city, case-folded."""

    province: str
    city: str


class SegmentTable:
    """Number segments and area codes to :class:`Region`; immutable once built."""

    __slots__ = ("area_codes", "base", "codes", "regions", "segments", "source")

    def __init__(
        self,
        *,
        segments: Mapping[int, Region] | None = None,
        area_codes: Mapping[str, Region] | None = None,
        source: str = "",
    ) -> None:
        self.source = source
        self.regions: list[Region] = []
        interned: dict[Region, int] = {}

        def code(region: Region) -> int:
            found = interned.get(region)
            if found is None:
                found = interned[region] = len(self.regions) + 1  # 0: no region
                self.regions.append(region)
            return found

        segments = segments or {}
        self.segments = len(segments)
        self.base = min(segments) if segments else 0
        span = (max(segments) - self.base + 1) if segments else 0
        if span > MAX_SPAN:
            raise ValueError(f"segment prefixes span more than {MAX_SPAN}")
        self.codes = array("H", [0]) * span
        for prefix, region in segments.items():
            self.codes[prefix - self.base] = code(region)
        self.area_codes: dict[str, Region] = dict(area_codes or {})
        for region in self.area_codes.values():
            code(region)
        if len(self.regions) > 0xFFFF:
            raise ValueError("more than 65535 distinct regions")

    def __len__(self) -> int:
        return self.segments

    def region_of(self, number: str | None, plan: NumberPlan | None = None) -> Region | None:
        """The home region of an E.164 number (no ``+``); None when unknown or foreign."""
        if not number:
            return None
        plan = plan or active_plan()
        cc = plan.country_code
        if not number.startswith(cc):
            return None
        national = number[len(cc) :]
        if len(national) == plan.mobile_length and national.startswith(plan.mobile_prefixes):
            if not national.isdigit():
                return None
            i = int(national[:SEGMENT_DIGITS]) - self.base
            if 0 <= i < len(self.codes):
                found = self.codes[i]
                return self.regions[found - 1] if found else None
            return None
        for n in (2, 3, 4):
            region = self.area_codes.get(national[:n])
            if region is not None:
                return region
        return None

    def region_of_dialled(
        self, digits: str | None, plan: NumberPlan | None = None
    ) -> Region | None:
        """The region of a number as dialled (a called number on the air interface).

        A carrier-select prefix (``12593``...) is removed first; short service numbers
        (``10086``, ``12580``) have no region.
        """
        if not digits:
            return None
        plan = plan or active_plan()
        if len(digits) != plan.mobile_length:
            for prefix in CARRIER_PREFIXES:
                if digits.startswith(prefix) and len(digits) - len(prefix) >= plan.min_digits:
                    digits = digits[len(prefix) :]
                    break
        try:
            e164 = plan.normalise(digits)
        except NumberError:
            return None
        return self.region_of(e164, plan)

    def provinces(self) -> frozenset[str]:
        return frozenset(r.province for r in self.regions)

    def cities(self) -> frozenset[str]:
        return frozenset(r.city for r in self.regions)

    def statistics(self) -> dict[str, object]:
        return {
            "segments": self.segments,
            "area_codes": len(self.area_codes),
            "regions": len(self.regions),
            "source": self.source,
        }


def builtin_area_codes() -> dict[str, Region]:
    return {code: Region(p, c) for code, (p, c) in AREA_CODES.items()}


def load_segments(path: Path | str, *, builtin: bool = True) -> SegmentTable:
    """Read a segments file; :class:`TableFileError` (file:line: reason) rejects it whole."""
    path = Path(path)
    name = str(path)
    segments: dict[int, Region] = {}
    areas: dict[str, Region] = {}
    first_line: dict[str, int] = {}
    regions: dict[Region, Region] = {}
    for line, row in read_rows(path, ("prefix", "province", "city")):
        prefix, province, city = row["prefix"], row["province"], row["city"]
        where = f"{name}:{line}"
        if not prefix.isascii() or not prefix.isdigit():
            raise TableFileError(f"{where}: prefix must be ASCII digits, got {prefix!r}")
        if prefix.startswith("0"):
            if not 3 <= len(prefix) <= 5 or prefix[1] == "0":
                raise TableFileError(
                    f"{where}: an area code is 0 and 2 to 4 digits (e.g. 010, 0755), got {prefix!r}"
                )
        elif len(prefix) != SEGMENT_DIGITS:
            raise TableFileError(
                f"{where}: a number segment has {SEGMENT_DIGITS} digits (e.g. 1390100), "
                f"got {len(prefix)} ({prefix!r}); area codes start with 0"
            )
        if not province or not city:
            raise TableFileError(f"{where}: province and city must not be empty")
        if prefix in first_line:
            raise TableFileError(f"{where}: prefix {prefix} already on line {first_line[prefix]}")
        first_line[prefix] = line
        region = Region(region_name(province), region_name(city))
        region = regions.setdefault(region, region)
        if prefix.startswith("0"):
            areas[prefix[1:]] = region
        else:
            segments[int(prefix)] = region
    if not first_line:
        raise TableFileError(f"{name}: no rows (an empty table would make every region unknown)")
    if segments and max(segments) - min(segments) >= MAX_SPAN:
        raise TableFileError(f"{name}: segment prefixes must all have {SEGMENT_DIGITS} digits")
    area_codes = builtin_area_codes() if builtin else {}
    area_codes.update(areas)
    return SegmentTable(segments=segments, area_codes=area_codes, source=name)
