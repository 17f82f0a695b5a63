"""The enrichment tables in force, replaced atomically by a successful load.

:class:`Enrichment` is what the pipeline and the rule conditions read: the number-segment
table, the TAC table and the gateway's own region (``[enrichment] local_province`` and
``local_city``). A load reads and checks a whole file in a worker thread and then swaps the
table in one assignment; a rejected file changes nothing (the error is kept for
``gatewayctl enrichment show``). Lookups are done on demand by the conditions that need them
(``visitor``, ``peer_region``, ``long_distance``, ``capability``), so events that no such rule
sees cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from gateway.enrich.csvfile import TableFileError, region_name
from gateway.enrich.segments import Region, SegmentTable, load_segments
from gateway.enrich.tac import Handset, TacTable, load_tac
from gateway.model import SignalEvent


class Enrichment:
    """Number segments, handsets and the local region; see the module docstring."""

    def __init__(
        self,
        *,
        segments: SegmentTable | None = None,
        tac: TacTable | None = None,
        local_province: str = "",
        local_city: str = "",
    ) -> None:
        self.segments = segments if segments is not None else SegmentTable()
        self.tac = tac if tac is not None else TacTable()
        self.local_province = region_name(local_province)
        self.local_city = region_name(local_city)
        self.last_error: dict[str, str | None] = {"segments": None, "tac": None}
        self.loaded_at: dict[str, float | None] = {"segments": None, "tac": None}
        self._mtime: dict[str, tuple[int, int] | None] = {"segments": None, "tac": None}
        self._limiter = trio.CapacityLimiter(1)

    # -- questions the conditions ask --------------------------------------------------

    def is_visitor(self, home: Region | None, *, scope: str = "province") -> bool:
        """``home`` is known and is not the local province (``scope="city"``: city)."""
        if home is None or not self.local_province:
            return False
        if home.province != self.local_province:
            return True
        return scope == "city" and bool(self.local_city) and home.city != self.local_city

    def is_long_distance(self, peer: Region | None, *, scope: str = "city") -> bool:
        """``peer`` is known and outside the local city (``scope="province"``: province)."""
        if peer is None or not self.local_province:
            return False
        if peer.province != self.local_province:
            return True
        return scope == "city" and bool(self.local_city) and peer.city != self.local_city

    def describe(
        self,
        event: SignalEvent,
        msisdn: str | None = None,
        *,
        last_imei: str | None = None,
        call_peer: str | None = None,
    ) -> dict[str, Any]:
        """The enrichment of one event as flat fields (``decode.py --enrich``).

        ``msisdn`` is the subscriber's E.164 number (from the profile, else the event's);
        ``last_imei`` the handset seen last when the event carries none; ``call_peer`` the
        number of the call's set-up for a ``call_end`` that carries none.
        """
        out: dict[str, Any] = {}
        home = self.segments.region_of(msisdn or event.msisdn)
        if home is not None:
            out["home_province"], out["home_city"] = home.province, home.city
            out["visitor"] = self.is_visitor(home)
        peer = self.segments.region_of_dialled(event.peer or call_peer)
        if peer is not None:
            out["peer_province"], out["peer_city"] = peer.province, peer.city
            if event.direction != "mt":
                out["long_distance"] = self.is_long_distance(peer)
        handset = self.tac.handset(event.imei or last_imei)
        if handset is not None:
            out["handset_brand"], out["handset_model"] = handset.brand, handset.model
            out["handset_capabilities"] = sorted(handset.capabilities)
        previous = self.tac.handset(event.previous_imei)
        if previous is not None:
            out["previous_handset_model"] = previous.model
        return out

    # -- loading -----------------------------------------------------------------------

    async def load_segments(
        self, path: Path | str, *, builtin_area_codes: bool = True, only_if_changed: bool = False
    ) -> bool:
        """Load a segments file in a thread and swap it in; False (table kept) on error."""

        def read() -> SegmentTable:
            table = load_segments(path, builtin=builtin_area_codes)
            self._check_local(table)
            return table

        return await self._load("segments", Path(path), read, only_if_changed)

    async def load_tac(self, path: Path | str, *, only_if_changed: bool = False) -> bool:
        """Load a TAC file in a thread and swap it in; False (table kept) on error."""
        return await self._load("tac", Path(path), lambda: load_tac(path), only_if_changed)

    def _check_local(self, table: SegmentTable) -> None:
        """A local region the table does not know would make every subscriber a visitor."""
        if self.local_province and self.local_province not in table.provinces():
            raise TableFileError(
                f"{table.source}: no row has the local province {self.local_province!r} "
                "([enrichment] local_province); check the spelling in both"
            )
        if self.local_city and self.local_city not in table.cities():
            raise TableFileError(
                f"{table.source}: no row has the local city {self.local_city!r} "
                "([enrichment] local_city); check the spelling in both"
            )

    async def _load(
        self, what: str, path: Path, read: Callable[[], Any], only_if_changed: bool
    ) -> bool:
        log = structlog.get_logger().bind(table=what, path=str(path))
        try:
            stat = path.stat()
            mtime = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            self.last_error[what] = f"{path}: cannot open: {exc.strerror or exc}"
            log.error("enrichment.load_failed", reason=self.last_error[what])
            return False
        if only_if_changed and mtime == self._mtime[what]:
            return True
        try:
            table = await trio.to_thread.run_sync(read, limiter=self._limiter)
        except Exception as exc:  # rejected whole: the table in force stays
            self.last_error[what] = str(exc)
            log.error("enrichment.load_failed", reason=self.last_error[what])
            return False
        setattr(self, what, table)  # one assignment: readers see the old or the new table
        self._mtime[what] = mtime
        self.last_error[what] = None
        self.loaded_at[what] = time.time()
        log.info("enrichment.loaded", rows=len(table))
        return True

    def statistics(self) -> dict[str, Any]:
        return {
            "local": {"province": self.local_province, "city": self.local_city},
            "segments": {
                **self.segments.statistics(),
                "loaded_at": self.loaded_at["segments"],
                "last_error": self.last_error["segments"],
            },
            "tac": {
                **self.tac.statistics(),
                "loaded_at": self.loaded_at["tac"],
                "last_error": self.last_error["tac"],
            },
        }


__all__ = ["Enrichment", "Handset", "Region"]
