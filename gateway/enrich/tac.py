"""What the handset is: the TAC table (first 8 IMEI digits -> brand, model, capabilities).

The type allocation code (TAC, the first 8 digits of an IMEI, 3GPP TS 23.003 6.2) names the
handset model. The operator exports its TAC database as CSV::

    tac,brand,model,capabilities
    35693803,nokia,n95,mms|wap|3g
    86891503,huawei,p40,mms|wap|lte|volte

``capabilities`` is a ``|``-separated list of lower-case names (``mms``, ``wap``, ``lte``...;
may be empty). Loading is strict like :mod:`gateway.enrich.segments`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from gateway.enrich.csvfile import TableFileError, read_rows

TAC_DIGITS = 8
_CAPABILITY = re.compile(r"[a-z0-9_]{1,32}")


@attrs.frozen(slots=True)
class Handset:
    """One handset model; ``mask`` has the bit of each capability (see :meth:`TacTable.bit`)."""

    tac: str
    brand: str
    model: str
    capabilities: frozenset[str]
    mask: int = attrs.field(default=0, eq=False)


class TacTable:
    """TAC -> :class:`Handset`; immutable once built."""

    __slots__ = ("bits", "by_tac", "source")

    def __init__(self, handsets: Mapping[int, Handset] | None = None, *, source: str = "") -> None:
        self.source = source
        self.bits: dict[str, int] = {}
        self.by_tac: dict[int, Handset] = {}
        for tac, handset in (handsets or {}).items():
            mask = 0
            for name in sorted(handset.capabilities):
                mask |= self.bits.setdefault(name, 1 << len(self.bits))
            self.by_tac[tac] = attrs.evolve(handset, mask=mask)

    def __len__(self) -> int:
        return len(self.by_tac)

    def bit(self, capability: str) -> int:
        """The mask bit of a capability (0 when no handset of the table has it)."""
        return self.bits.get(capability, 0)

    def handset(self, imei: str | None) -> Handset | None:
        """The handset of an IMEI or IMEISV (digits); None when its TAC is not in the table."""
        if not imei or len(imei) < TAC_DIGITS:
            return None
        tac = imei[:TAC_DIGITS]
        return self.by_tac.get(int(tac)) if tac.isdigit() else None

    def handset_of_key(self, imei_key: int) -> Handset | None:
        """The handset of an IMEI stored as an integer of 15 digits (the profile index's)."""
        return self.by_tac.get(imei_key // 10 ** (15 - TAC_DIGITS)) if imei_key else None

    def statistics(self) -> dict[str, object]:
        return {"tacs": len(self.by_tac), "capabilities": sorted(self.bits), "source": self.source}


def load_tac(path: Path | str) -> TacTable:
    """Read a TAC file; :class:`TableFileError` (file:line: reason) rejects it whole."""
    path = Path(path)
    name = str(path)
    handsets: dict[int, Handset] = {}
    first_line: dict[int, int] = {}
    for line, row in read_rows(path, ("tac", "brand", "model", "capabilities")):
        where = f"{name}:{line}"
        tac = row["tac"]
        if len(tac) != TAC_DIGITS or not tac.isascii() or not tac.isdigit():
            raise TableFileError(f"{where}: a TAC is {TAC_DIGITS} ASCII digits, got {tac!r}")
        if not row["brand"] or not row["model"]:
            raise TableFileError(f"{where}: brand and model must not be empty")
        capabilities = set()
        for item in row["capabilities"].split("|"):
            item = item.strip().lower()
            if not item:
                continue
            if not _CAPABILITY.fullmatch(item):
                raise TableFileError(
                    f"{where}: capability names are letters, digits or _ (e.g. mms|wap|lte), "
                    f"got {item!r}"
                )
            capabilities.add(item)
        key = int(tac)
        if key in first_line:
            raise TableFileError(f"{where}: TAC {tac} already on line {first_line[key]}")
        first_line[key] = line
        handsets[key] = Handset(
            tac=tac, brand=row["brand"], model=row["model"], capabilities=frozenset(capabilities)
        )
    if not handsets:
        raise TableFileError(f"{name}: no rows")
    return TacTable(handsets, source=name)
