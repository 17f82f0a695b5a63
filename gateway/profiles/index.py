"""The in-memory subscriber profile index: lookup by IMSI or MSISDN, attributes by row.

Built by :mod:`gateway.profiles.loader` from a BOSS file, used by the pipeline for every
event. Memory is the design constraint (10 million subscribers in well under 2 GB), so there
are no per-subscriber Python objects: a subscriber is a *row number*; keys live in sorted
64-bit arrays searched with :func:`bisect.bisect_left`, attributes in arrays of codes into
interned value tables (:mod:`gateway.profiles.columns`), and the attributes learned from
signaling (last cell, last IMEI, last seen) in preallocated arrays.

Cells are packed as ``LAC << 16 | CI`` (both 16-bit in GSM), 0 meaning unknown.
"""

from __future__ import annotations

import itertools
import operator
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.model import SignalEvent, Subscriber
from gateway.numbers import active_plan
from gateway.profiles.columns import (
    ALL_ATTRIBUTES,
    SET_COLUMNS,
    VALUE_COLUMNS,
    Interner,
    SetColumn,
)


def digits_key(value: str | None) -> int:
    """An IMSI (or IMEI) string as an integer key; 0 when absent or not digits (``+`` allowed).

    MSISDNs are not keyed with this: they have several written forms, and
    :meth:`gateway.numbers.NumberPlan.key` brings each to its one E.164 key.
    """
    if not value:
        return 0
    if value[0] == "+":
        value = value[1:]
    return int(value) if value.isdigit() and len(value) <= 18 else 0


def pack_cell(lac: int | None, ci: int | None) -> int:
    if lac is None or ci is None:
        return 0
    return ((lac & 0xFFFF) << 16) | (ci & 0xFFFF)


def cell_name(packed: int) -> str:
    return f"{packed >> 16}-{packed & 0xFFFF}" if packed else ""


class ProfileIndex:
    """Subscriber profiles, column-wise. Rows are ``0 .. len(index) - 1``; -1 means unknown."""

    def __init__(
        self,
        *,
        imsi: array,
        msisdn: array,
        values: Mapping[str, tuple[Interner, array]],
        sets: Mapping[str, SetColumn],
        source: str = "",
    ) -> None:
        self.size = n = len(msisdn)
        self.imsi_col = imsi  # 'q', 0 = unknown
        self.msisdn_col = msisdn  # 'q'
        self.values = dict(values)
        self.sets = dict(sets)
        self.source = source
        self.loaded_at = time.time()
        self.imsi_keys, self.imsi_rows = _sorted_index(imsi)
        self.msisdn_keys, self.msisdn_rows = _sorted_index(msisdn)
        self.imsi_lookup = KeyLookup(self.imsi_keys, self.imsi_rows)
        self.msisdn_lookup = KeyLookup(self.msisdn_keys, self.msisdn_rows)
        # Learned from signaling; zero means "not seen yet".
        self.last_cell = array("I", [0]) * n
        self.last_imei = array("q", [0]) * n
        self.last_seen = array("d", [0.0]) * n

    # -- lookup -------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.size

    def row_by_imsi(self, imsi: str | None) -> int:
        return self.imsi_lookup.find(digits_key(imsi))

    def row_by_msisdn(self, msisdn: str | None) -> int:
        """The row of an MSISDN in any form :mod:`gateway.numbers` accepts; -1 if unknown."""
        return self.msisdn_lookup.find(active_plan().key(msisdn))

    def row_for(self, event: SignalEvent) -> int:
        """The subscriber of an event: by IMSI first, then MSISDN; -1 if unknown."""
        imsi = event.imsi
        if imsi:  # the common case inlined: this runs for every event
            key = int(imsi) if imsi.isdigit() and len(imsi) <= 18 else 0
            row = self.imsi_lookup.find(key) if key else -1
            if row >= 0:
                return row
        if event.msisdn:  # normalised where the event entered; key() keeps a raw one safe
            return self.msisdn_lookup.find(active_plan().key(event.msisdn))
        return -1

    # -- attributes ---------------------------------------------------------------------

    def msisdn(self, row: int) -> str:
        return str(self.msisdn_col[row])

    def imsi(self, row: int) -> str | None:
        value = self.imsi_col[row]
        return str(value) if value else None

    def value(self, name: str, row: int) -> str:
        """A single-valued attribute ("" when empty)."""
        interner, codes = self.values[name]
        return interner.values[codes[row]]

    def items(self, name: str, row: int) -> frozenset[str]:
        """A set-valued attribute (products, capabilities, tags)."""
        column = self.sets[name]
        return column.items(column.codes[row])

    def attribute(self, name: str, row: int) -> Any:
        """Any attribute by name; None when empty or unknown (templates, plugin views)."""
        if name in self.values:
            return self.value(name, row) or None
        if name in self.sets:
            return self.items(name, row) or None
        if name == "msisdn":
            return self.msisdn(row)
        if name == "imsi":
            return self.imsi(row)
        if name == "last_cell":
            return cell_name(self.last_cell[row]) or None
        if name == "last_lac":
            return (self.last_cell[row] >> 16) or None
        if name == "last_imei":
            # stored as an integer: a type allocation code may start with 0 (IMEIs: 15 digits)
            return str(self.last_imei[row]).zfill(15) if self.last_imei[row] else None
        if name == "last_seen":
            return self.last_seen[row] or None
        return None

    # -- learning from signaling --------------------------------------------------------

    def observe(self, row: int, event: SignalEvent) -> None:
        """Update the dynamic attributes of ``row`` from an event (latest timestamp wins)."""
        ts = event.timestamp
        if ts < self.last_seen[row]:
            return  # a late event must not roll the subscriber's state back
        self.last_seen[row] = ts
        if event.ci is not None and event.lac is not None:
            self.last_cell[row] = ((event.lac & 0xFFFF) << 16) | (event.ci & 0xFFFF)
        if event.imei:
            key = digits_key(event.imei[:15])
            if key:
                self.last_imei[row] = key

    def carry_dynamic_from(self, old: ProfileIndex) -> int:
        """Copy learned attributes of subscribers (by MSISDN) from the index being replaced."""
        carried = 0
        new_keys, new_rows = self.msisdn_keys, self.msisdn_rows
        old_keys, old_rows = old.msisdn_keys, old.msisdn_rows
        i = j = 0
        n, m = len(new_keys), len(old_keys)
        while i < n and j < m:  # merge join of the two sorted key arrays
            a, b = new_keys[i], old_keys[j]
            if a < b:
                i += 1
            elif a > b:
                j += 1
            else:
                src, dst = old_rows[j], new_rows[i]
                if old.last_seen[src]:
                    self.last_seen[dst] = old.last_seen[src]
                    self.last_cell[dst] = old.last_cell[src]
                    self.last_imei[dst] = old.last_imei[src]
                    carried += 1
                i += 1
                j += 1
        return carried

    # -- views --------------------------------------------------------------------------

    def view(self, row: int) -> ProfileView:
        return ProfileView(self, row)

    def subscriber(self, row: int) -> Subscriber:
        return Subscriber(
            msisdn=self.msisdn(row), imsi=self.imsi(row), attributes=ProfileView(self, row)
        )

    def statistics(self) -> dict[str, Any]:
        return {
            "subscribers": self.size,
            "source": self.source,
            "loaded_at": self.loaded_at,
            "distinct": {name: len(i.values) - 1 for name, (i, _) in self.values.items()},
        }


class ProfileView(Mapping[str, Any]):
    """A read-only mapping view of one subscriber's attributes (empty ones are absent)."""

    __slots__ = ("_index", "_row")

    def __init__(self, index: ProfileIndex, row: int) -> None:
        self._index = index
        self._row = row

    def __getitem__(self, name: str) -> Any:
        value = self._index.attribute(name, self._row)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (
            name for name in ALL_ATTRIBUTES if self._index.attribute(name, self._row) is not None
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"ProfileView({dict(self)!r})"


class KeyLookup:
    """Sorted keys plus a bucket directory: ``find`` bisects only within one bucket.

    Buckets split the key range in equal spans sized for about :data:`BUCKET_KEYS` keys each
    (fewer probes than a bisect over millions: each probe creates an int object). Clustered
    number ranges only make some buckets fuller; the answer is the same.
    """

    __slots__ = ("keys", "kmin", "nbuckets", "rows", "shift", "starts")

    def __init__(self, keys: array, rows: array) -> None:
        self.keys, self.rows = keys, rows
        n = len(keys)
        self.kmin = keys[0] if n else 0
        span = (keys[-1] - self.kmin + 1) if n else 1
        self.shift = max(0, (span // max(1, n // BUCKET_KEYS)).bit_length() - 1)
        self.nbuckets = (span >> self.shift) + 1
        bounds = range(self.kmin, self.kmin + ((self.nbuckets + 1) << self.shift), 1 << self.shift)
        self.starts = array("i", map(bisect_left, itertools.repeat(keys), bounds))

    def find(self, key: int) -> int:
        """The row of ``key``, or -1."""
        b = (key - self.kmin) >> self.shift if key >= self.kmin else -1
        if b < 0 or b >= self.nbuckets:
            return -1
        i = bisect_left(self.keys, key, self.starts[b], self.starts[b + 1])
        if i < len(self.keys) and self.keys[i] == key:
            return self.rows[i]
        return -1


BUCKET_KEYS = 16


def _sorted_index(keys: array) -> tuple[array, array]:
    """Sorted non-zero keys and the row of each, for bisect lookup.

    Each key is combined with its row into one integer (``key << 32 | row``) so a single
    list sort orders both without a key function; the list is freed before returning.
    """
    n = len(keys)
    if n and keys[0] > 0 and all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
        # already in order (BOSS exports are usually sorted by MSISDN): share the column
        return keys, array("i", range(n))
    # all in C: key << 32 | row, sort, split again (keys 0 = absent sort first and are cut off)
    combined = list(map(operator.or_, map(operator.lshift, keys, itertools.repeat(32)), range(n)))
    combined.sort()
    start = bisect_left(combined, 1 << 32)
    if start:
        del combined[:start]
    sorted_keys = array("q", map(operator.rshift, combined, itertools.repeat(32)))
    rows = array("i", map(operator.and_, combined, itertools.repeat(0xFFFFFFFF)))
    del combined
    return sorted_keys, rows


__all__ = [
    "SET_COLUMNS",
    "VALUE_COLUMNS",
    "ProfileIndex",
    "ProfileView",
    "cell_name",
    "digits_key",
    "pack_cell",
]
