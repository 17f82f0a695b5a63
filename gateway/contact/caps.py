"""Window arithmetic in the operator's local time: calendar day/week/month starts, time of day.

Calendar windows start at local midnight (day), Monday 00:00 (week) and the 1st 00:00
(month), computed with :mod:`zoneinfo` so that a day across a DST change is 23 or 25 hours
long and the window still starts at the local midnight. Results are cached per whole second,
because the decision path asks the same questions thousands of times a second.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo


class LocalClock:
    """Answers local-time questions about a Unix timestamp in one timezone (cached per second)."""

    __slots__ = ("_cache", "_cache_second", "tz")

    def __init__(self, tz: zoneinfo.ZoneInfo | str) -> None:
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
        self._cache_second = -1
        self._cache: tuple[int, float, float, float, float] = (0, 0.0, 0.0, 0.0, 0.0)

    def _at(self, now: float) -> tuple[int, float, float, float, float]:
        second = int(now)
        if second != self._cache_second:
            local = dt.datetime.fromtimestamp(second, self.tz)
            midnight = dt.datetime(local.year, local.month, local.day, tzinfo=self.tz)
            day = midnight.timestamp()
            week = (midnight - dt.timedelta(days=local.weekday())).timestamp()
            month = dt.datetime(local.year, local.month, 1, tzinfo=self.tz).timestamp()
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            self._cache = (seconds, day, week, month, 0.0)
            self._cache_second = second
        return self._cache

    def second_of_day(self, now: float) -> int:
        """Wall-clock seconds since local midnight (08:30 -> 30600), whatever DST did today."""
        return self._at(now)[0]

    def window_start(self, window: str, now: float, seconds: float = 0.0) -> float:
        """Start (Unix time) of the window containing ``now``: calendar, rolling, or lifetime."""
        if window == "day":
            return self._at(now)[1]
        if window == "week":
            return self._at(now)[2]
        if window == "month":
            return self._at(now)[3]
        if window == "rolling":
            return now - seconds
        return float("-inf")  # lifetime

    def next_at(self, now: float, second_of_day: int) -> float:
        """The first moment after ``now`` when the local wall clock reads ``second_of_day``.

        If that wall-clock time does not exist on a day (skipped by a DST change), the moment
        it maps to under ``fold=0`` is used (an hour later in the local reading).
        """
        local = dt.datetime.fromtimestamp(now, self.tz)
        hour, rest = divmod(second_of_day, 3600)
        for days in (0, 1, 2):
            day = local.date() + dt.timedelta(days=days)
            if hour >= 24:
                candidate = dt.datetime(
                    day.year, day.month, day.day, tzinfo=self.tz
                ) + dt.timedelta(days=1)
            else:
                candidate = dt.datetime(
                    day.year, day.month, day.day, hour, rest // 60, rest % 60, tzinfo=self.tz
                )
            ts = candidate.timestamp()
            if ts > now:
                return ts
        raise AssertionError("unreachable: a time of day recurs within two days")

    def local_text(self, ts: float) -> str:
        """``2026-03-29 08:00 CEST`` for explanations."""
        return dt.datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M %Z")
