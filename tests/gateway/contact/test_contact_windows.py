"""Calendar windows and times of day in local time, across midnight and DST changes."""

from __future__ import annotations

import zoneinfo

from contact_helpers import local_ts

from gateway.contact.caps import LocalClock

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_day_window_starts_at_shanghai_midnight() -> None:
    """23:59 and 00:01 Shanghai time fall in different calendar days (UTC+8, no DST)."""
    clock = LocalClock(SH)
    before = local_ts(2026, 11, 23, 23, 59, SH)
    after = before + 120
    assert clock.window_start("day", before) == local_ts(2026, 11, 23, 0, 0, SH)
    assert clock.window_start("day", after) == local_ts(2026, 11, 24, 0, 0, SH)
    # the Shanghai day starts at 16:00 UTC of the day before
    assert local_ts(2026, 11, 24, 0, 0, SH) % 86400 == 16 * 3600


def test_week_and_month_windows() -> None:
    """Weeks start Monday 00:00 local, months on the 1st 00:00 local."""
    clock = LocalClock(SH)
    sunday_late = local_ts(2026, 11, 29, 23, 30, SH)
    assert clock.window_start("week", sunday_late) == local_ts(2026, 11, 23, 0, 0, SH)
    assert clock.window_start("week", sunday_late + 3600) == local_ts(2026, 11, 30, 0, 0, SH)
    assert clock.window_start("month", sunday_late) == local_ts(2026, 11, 1, 0, 0, SH)
    assert clock.window_start("month", local_ts(2026, 12, 1, 0, 1, SH)) == local_ts(
        2026, 12, 1, 0, 0, SH
    )


def test_berlin_day_of_23_and_25_hours() -> None:
    """Across the March and October DST changes a Berlin day is 23 or 25 hours long."""
    clock = LocalClock(BERLIN)
    march_day = clock.window_start("day", local_ts(2026, 3, 29, 12, 0, BERLIN))
    next_day = clock.window_start("day", local_ts(2026, 3, 30, 1, 0, BERLIN))
    assert next_day - march_day == 23 * 3600
    oct_day = clock.window_start("day", local_ts(2026, 10, 25, 12, 0, BERLIN))
    oct_next = clock.window_start("day", local_ts(2026, 10, 26, 1, 0, BERLIN))
    assert oct_next - oct_day == 25 * 3600


def test_second_of_day_is_wall_clock_after_dst() -> None:
    """08:00 on a DST-change day reads as 08:00, not 07:00 or 09:00."""
    clock = LocalClock(BERLIN)
    assert clock.second_of_day(local_ts(2026, 3, 29, 8, 0, BERLIN)) == 8 * 3600
    assert clock.second_of_day(local_ts(2026, 10, 25, 8, 0, BERLIN)) == 8 * 3600


def test_next_at_crosses_midnight_and_dst() -> None:
    """The next 08:00 after 21:30 is tomorrow's 08:00 local, even across a DST change."""
    sh = LocalClock(SH)
    assert sh.next_at(local_ts(2026, 11, 23, 21, 30, SH), 8 * 3600) == local_ts(
        2026, 11, 24, 8, 0, SH
    )
    assert sh.next_at(local_ts(2026, 11, 24, 3, 0, SH), 8 * 3600) == local_ts(
        2026, 11, 24, 8, 0, SH
    )
    berlin = LocalClock(BERLIN)
    evening = local_ts(2026, 3, 28, 21, 30, BERLIN)
    morning = berlin.next_at(evening, 8 * 3600)
    assert morning == local_ts(2026, 3, 29, 8, 0, BERLIN)
    assert morning - evening == 9.5 * 3600  # one hour shorter night


async def test_restart_rebuilds_calendar_windows_in_local_time(open_sqlite, clock) -> None:
    """After a restart, day and month caps count the ledger's contacts by local (Berlin, DST) calendar."""
    from contact_helpers import BERLIN, local_ts, req

    table = {
        "timezone": "Europe/Berlin",
        "caps": {
            "sms_day": {"scope": "channel", "channel": "sms", "window": "day", "limit": 1},
            "sms_month": {"scope": "channel", "channel": "sms", "window": "month", "limit": 2},
        },
    }
    clock.now = local_ts(2026, 10, 1, 0, 5, BERLIN)  # first minutes of the month, summer time
    async with open_sqlite(table) as cc:
        assert (await cc.decide(req(contact_id="m1"))).allowed
        await cc.commit("m1")
    clock.now = local_ts(2026, 10, 30, 12, 0, BERLIN)  # after the change to winter time
    async with open_sqlite(table) as cc:
        assert (await cc.decide(req(contact_id="m2"))).allowed
        await cc.commit("m2")
    clock.now = local_ts(2026, 10, 31, 23, 55, BERLIN)  # a fresh day, the month is full
    async with open_sqlite(table) as cc:
        assert (await cc.decide(req())).reason == "cap.channel.month"
        clock.now = local_ts(2026, 11, 1, 0, 1, BERLIN)  # a new month
        assert (await cc.decide(req())).allowed
