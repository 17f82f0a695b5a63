"""The profile index in force, replaced atomically by a successful load.

Loading 10 million rows takes tens of seconds of CPU, so :meth:`ProfileHolder.load` runs it in
a worker thread; the event loop keeps serving (with the GIL shared) and the pipeline keeps
using the old index until the new one is complete. A rejected file changes nothing.
"""

from __future__ import annotations

import time
from array import array
from pathlib import Path
from typing import Any

import structlog
import trio

from gateway.profiles.index import ProfileIndex
from gateway.profiles.loader import load_profiles


def empty_index() -> ProfileIndex:
    return ProfileIndex(imsi=array("q"), msisdn=array("q"), values={}, sets={}, source="")


class ProfileHolder:
    """What ``gateway.profiles`` is: ``holder.index`` is the index to use right now."""

    def __init__(self, index: ProfileIndex | None = None) -> None:
        self.index: ProfileIndex = index if index is not None else empty_index()
        self.last_error: str | None = None
        self.last_load_s: float | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._mtime: tuple[int, int] | None = None  # (mtime_ns, size) of the file in force

    def replace(self, index: ProfileIndex, *, carry_dynamic: bool = True) -> int:
        """Swap in ``index``; learned attributes of subscribers present in both are kept."""
        carried = index.carry_dynamic_from(self.index) if carry_dynamic and len(self.index) else 0
        self.index = index
        return carried

    async def load(
        self, path: Path | str, *, delimiter: str = ",", only_if_changed: bool = False
    ) -> bool:
        """Load ``path`` in a thread and swap it in. Returns False (old index kept) on error.

        With ``only_if_changed`` a file whose modification time is unchanged is not re-read.
        """
        log = structlog.get_logger().bind(path=str(path))
        path = Path(path)
        try:
            stat = path.stat()
            mtime = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            self.last_error = f"{path}: cannot open: {exc.strerror or exc}"
            log.error("profiles.load_failed", reason=self.last_error)
            return False
        if only_if_changed and mtime == self._mtime:
            return True
        started = time.perf_counter()

        def work() -> tuple[ProfileIndex, int]:
            index = load_profiles(path, delimiter=delimiter)
            return index, index.carry_dynamic_from(self.index) if len(self.index) else 0

        try:
            index, carried = await trio.to_thread.run_sync(work, limiter=self._limiter)
        except Exception as exc:  # the file is rejected whole; the index in force stays
            self.last_error = str(exc)
            log.error("profiles.load_failed", reason=self.last_error)
            return False
        self.index = index
        self._mtime = mtime
        self.last_error = None
        self.last_load_s = time.perf_counter() - started
        log.info(
            "profiles.loaded",
            subscribers=len(index),
            seconds=round(self.last_load_s, 2),
            carried=carried,
        )
        return True

    def statistics(self) -> dict[str, Any]:
        stats = self.index.statistics()
        stats["last_error"] = self.last_error
        stats["last_load_s"] = self.last_load_s
        return stats
