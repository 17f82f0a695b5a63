"""Column schema and value tables of the subscriber profile index.

Profiles are stored column-wise: one :mod:`array` per attribute, holding small integer codes
into an *interned value table* (every distinct brand, plan, cell... is stored once). Set-valued
attributes (products held, terminal capabilities, tags) intern the whole ``a|b|c`` cell, and
each distinct combination is turned into a bitmask once, so "has product X" is one AND.
"""

from __future__ import annotations

from array import array

#: Key columns: digits, stored as integers (64-bit) for the sorted lookup indexes.
KEY_COLUMNS = ("imsi", "msisdn")
#: Single-valued string attributes, interned. Code 0 is always the empty value.
VALUE_COLUMNS = (
    "brand",  # product brand (e.g. gotone, mzone, easyown)
    "plan",  # tariff plan id
    "arpu_band",  # average revenue per user band
    "age_band",
    "region",  # province / city the subscriber belongs to
    "county",
    "home_cell",  # "LAC-CI" where the subscriber spends the night
    "terminal",  # handset model
    # dates as YYYY-MM-DD, for periodic campaigns (gateway.batch.periodic)
    "birthday",
    "network_since",  # joined the network (anniversary: years on the network)
    "product_expiry",
    "contract_end",
)
#: Set-valued attributes, ``|``-separated in the file.
SET_COLUMNS = ("products", "capabilities", "tags")
#: Attributes learned from signaling (not in the file).
DYNAMIC_ATTRIBUTES = ("last_cell", "last_lac", "last_imei", "last_seen")

ALL_FILE_COLUMNS = KEY_COLUMNS + VALUE_COLUMNS + SET_COLUMNS
ALL_ATTRIBUTES = ALL_FILE_COLUMNS + DYNAMIC_ATTRIBUTES
SET_SEPARATOR = "|"


class Interner(dict):
    """Maps each distinct value to a small code, in first-seen order; ``values[code]``.

    ``interner[b]`` allocates a code for an unseen value (through ``__missing__``), so a
    whole column converts with ``array(typecode, map(interner.__getitem__, column))`` at C
    speed for values already seen. Keys are the raw bytes read from the file; ``values``
    holds them decoded (once per distinct value) and stripped. Code 0 is the empty value.
    """

    __slots__ = ("encoding", "values")

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self.encoding = encoding
        self.values: list[str] = [""]
        self[b""] = 0
        self[""] = 0

    def __missing__(self, key: bytes | str) -> int:
        value = key.decode(self.encoding) if isinstance(key, bytes) else key
        value = value.strip()
        code = self.get(value) if value != key else None
        if code is None:
            code = len(self.values)
            self.values.append(value)
            self[value] = code
        self[key] = code
        return code


class SetColumn:
    """A set-valued column: interned combination strings plus per-combination bitmasks.

    Element bit positions are shared by all combinations of the column (``bits``), so a
    predicate compiles "has product 12593" to one mask and tests ``masks[code] & bit``.
    """

    __slots__ = ("bits", "codes", "interner", "masks")

    def __init__(self, encoding: str = "utf-8") -> None:
        self.interner = Interner(encoding)
        self.bits: dict[str, int] = {}
        self.masks: list[int] = [0]
        self.codes = array("I")

    def finish(self) -> None:
        """Compute the bitmask of every combination interned so far."""
        bits = self.bits
        for combo in self.interner.values[len(self.masks) :]:  # distinct combinations
            mask = 0
            for item in combo.split(SET_SEPARATOR):
                item = item.strip()
                if item:
                    bit = bits.get(item)
                    if bit is None:
                        bit = bits[item] = 1 << len(bits)
                    mask |= bit
            self.masks.append(mask)

    def bit(self, item: str) -> int:
        """The mask of one element (0 when no subscriber has it)."""
        return self.bits.get(item, 0)

    def items(self, code: int) -> frozenset[str]:
        mask = self.masks[code]
        return frozenset(name for name, bit in self.bits.items() if mask & bit)
