"""Periodic campaigns: when a run is due, and whom it selects from the profile index.

A run's *period* is the local date of its scheduled time (daily: ``2026-12-01``; weekly: the
date of that week's run day). Only the latest due period is ever run: a daemon that was down
for three days runs once when it comes back, not three times. A run is executed by a
:class:`~gateway.batch.runner.BatchRunner` under the run id ``CAMPAIGN@PERIOD`` (its own
durable cursor and snapshot) with contact ids naming the period, so a subscriber is contacted
at most once per period, and a run interrupted by a restart resumes.
"""

from __future__ import annotations

import datetime as dt
from array import array
from typing import Any

from gateway.campaigns.model import PeriodicPolicy


def latest_due(policy: PeriodicPolicy, now: float, tz: dt.tzinfo) -> tuple[str, float]:
    """(period, scheduled time) of the latest run scheduled at or before ``now``."""
    local = dt.datetime.fromtimestamp(now, tz)
    hour, rest = divmod(policy.at, 3600)
    run = local.replace(hour=hour, minute=rest // 60, second=rest % 60, microsecond=0)
    if policy.every == "weekly" and policy.weekday is not None:
        run -= dt.timedelta(days=(run.weekday() - policy.weekday) % 7)
        if run > local:
            run -= dt.timedelta(days=7)
    elif run > local:
        run -= dt.timedelta(days=1)
    return run.date().isoformat(), run.timestamp()


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _anniversary_on(day: dt.date, value: dt.date) -> bool:
    if (value.month, value.day) == (day.month, day.day):
        return value < day  # not on the day itself (joined today, born today)
    # 29 February is celebrated on 28 February in common years
    leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
    return (value.month, value.day) == (2, 29) and not leap and (day.month, day.day) == (2, 28)


def select(index: Any, policy: PeriodicPolicy, day: dt.date) -> array:
    """MSISDN keys of the profiles matching every criterion of ``policy`` on ``day``.

    Each criterion is evaluated once per distinct value (dates and tag combinations are
    interned in the index), then the rows are scanned by code.
    """
    if index is None or len(index) == 0:
        return array("Q")
    tests: list[tuple[Any, set[int]]] = []
    if policy.date_field is not None:
        interner, codes = index.values[policy.date_field]
        last = day + dt.timedelta(days=policy.within_days)
        good = {
            code
            for code, text in enumerate(interner.values)
            if (d := _date(text)) is not None and day <= d <= last
        }
        tests.append((codes, good))
    if policy.anniversary is not None:
        interner, codes = index.values[policy.anniversary]
        good = {
            code
            for code, text in enumerate(interner.values)
            if (d := _date(text)) is not None and _anniversary_on(day, d)
        }
        tests.append((codes, good))
    if policy.tag:
        column = index.sets["tags"]
        bit = column.bit(policy.tag)
        good = {code for code, mask in enumerate(column.masks) if mask & bit}
        tests.append((column.codes, good))
    if not tests or any(not good for _, good in tests):
        return array("Q")
    rows = range(len(index))
    for codes, good in tests:
        rows = [r for r in rows if codes[r] in good]  # type: ignore[assignment]
    msisdns = index.msisdn_col
    return array("Q", sorted({msisdns[r] for r in rows}))
