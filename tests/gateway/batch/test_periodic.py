"""Periodic campaigns: a daily run at a fixed clock selecting by date, anniversary and tag,
once per period, and the missed-run rule across a restart (real gateway, SMSC simulator)."""

from __future__ import annotations

import datetime as dt
import textwrap
import zoneinfo
from pathlib import Path

import trio

from gateway.batch.periodic import latest_due, select
from gateway.batch.plugin import BatchPlugin
from gateway.campaigns.model import PeriodicPolicy
from gateway.profiles.loader import load_profiles
from gateway.testing import FakeClock, open_gateway, open_smsc_simulator, wait_until

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
PROFILES = """\
msisdn,product_expiry,birthday,tags
8613900000001,2026-12-03,1990-05-05,vip
8613900000002,2026-12-20,1990-05-05,vip
8613900000003,2026-12-02,1985-12-01,
8613900000004,2026-11-30,1985-12-01,vip
8613900000005,2026-12-01,1992-02-29,vip|student
"""


def local(y, m, d, hh=0, mm=0) -> float:
    return dt.datetime(y, m, d, hh, mm, tzinfo=TZ).timestamp()


def test_latest_due_daily_and_weekly():
    """The latest scheduled run at or before now: today's once its time passed, else the
    previous one; weekly on its weekday."""
    daily = PeriodicPolicy(every="daily", at=9 * 3600, tag="x")
    assert latest_due(daily, local(2026, 12, 2, 8, 59), TZ)[0] == "2026-12-01"
    assert latest_due(daily, local(2026, 12, 2, 9, 0), TZ) == ("2026-12-02", local(2026, 12, 2, 9))
    weekly = PeriodicPolicy(every="weekly", at=10 * 3600, weekday=0, tag="x")  # Monday
    assert latest_due(weekly, local(2026, 12, 2, 12), TZ)[0] == "2026-11-30"  # a Wednesday
    assert latest_due(weekly, local(2026, 11, 30, 9), TZ)[0] == "2026-11-23"


def test_select_by_date_within_anniversary_and_tag(tmp_path):
    """Expiry within 2 days AND tag vip; birthdays on the day (29 Feb on 28 Feb of a common
    year); the criteria combine."""
    path = tmp_path / "p.csv"
    path.write_text(PROFILES)
    index = load_profiles(path)
    day = dt.date(2026, 12, 1)
    within = PeriodicPolicy(date_field="product_expiry", within_days=2, tag="vip")
    assert list(select(index, within, day)) == [8613900000001, 8613900000005]
    assert list(select(index, PeriodicPolicy(anniversary="birthday"), day)) == [
        8613900000003,
        8613900000004,
    ]
    leap = PeriodicPolicy(anniversary="birthday", tag="student")
    assert list(select(index, leap, dt.date(2027, 2, 28))) == [8613900000005]
    assert list(select(index, leap, dt.date(2028, 2, 28))) == []
    assert list(select(index, PeriodicPolicy(tag="nobody"), day)) == []


def write(directory: Path) -> None:
    (directory / "profiles.csv").write_text(PROFILES)
    (directory / "campaigns").mkdir(exist_ok=True)
    (directory / "campaigns" / "expiry.toml").write_text(
        textwrap.dedent(
            """\
            id = "expiry"
            name = "Expiry reminder"
            kind = "periodic"
            channels = ["sms"]
            initial_state = "running"
            [periodic]
            every = "daily"
            at = "09:00"
            [select]
            date_field = "product_expiry"
            within_days = 30
            tag = "vip"
            [schedule]
            start = 2030-12-01T00:00:00+08:00  # no run before (the one of 11-30)
            [content.sms]
            text = "Your product expires on {msisdn}"
            """
        )
    )


def config(directory: Path, smsc) -> str:
    return textwrap.dedent(
        f"""
        [campaigns]
        directory = "{directory / "campaigns"}"
        [profiles]
        file = "{directory / "profiles.csv"}"
        [plugins.sms_smpp]
        [[plugins.sms_smpp.smsc]]
        name = "sim"
        host = "{smsc.host}"
        port = {smsc.port}
        system_id = "gateway"
        password = "secret"
        registered_delivery = 0
        """
    )


def batch_of(gw):
    for plugin in gw.daemon.pm.get_plugins():
        if isinstance(plugin, BatchPlugin):
            return plugin.component
    raise AssertionError("no batch component")


async def runs(gw) -> list[tuple[str, int, int]]:
    writer = gw.gateway.ledger.writer
    return await writer.run(
        lambda c: c.execute(
            "SELECT campaign_id, total, cursor FROM batch_progress ORDER BY campaign_id"
        ).fetchall()
    )


async def test_daily_run_at_a_fixed_clock_once_per_period_and_missed_runs(tmp_path):
    """At 09:00 the day's run selects and sends once; later that day nothing more; the next
    day runs again; after three days down, one run (the latest period), not three."""
    write(tmp_path)
    (tmp_path / "profiles.csv").write_text(PROFILES.replace("2026-", "2030-"))
    clock = FakeClock(epoch=local(2030, 12, 1, 8, 59))
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        sim = smsc.simulator
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            batch = batch_of(gw)
            batch.clock = clock
            await trio.sleep(0.5)  # 08:59: the latest scheduled run (11-30) is before the start
            assert batch.runners == {} and sim.submitted == []
            clock.advance(120)  # 09:01: the day's run is due
            await wait_until(lambda: len(sim.submitted) == 3, within=30)
            # vip with expiry in [12-01, 12-31]: subscribers 1, 2, 5 (4 expired on 11-30)
            assert sorted(s.destination_addr for s in sim.submitted) == [
                "8613900000001",
                "8613900000002",
                "8613900000005",
            ]
            clock.advance(6 * 3600)  # 15:01 the same day: nothing more
            await wait_until(lambda: batch.runners["expiry@2030-12-01"].state == "done")
            clock.advance(86400)  # the next day: 5's product expired the day before
            await wait_until(lambda: len(sim.submitted) == 5, within=30)
            assert [r[0] for r in await runs(gw)] == ["expiry@2030-12-01", "expiry@2030-12-02"]
            progress = await gw.command("campaign", "progress", "expiry")
            assert progress.data["run"] == "expiry@2030-12-02"
        # down for three days; back on the fifth at 10:00
        clock.advance(3 * 86400 + 3600)
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            batch_of(gw).clock = clock
            await wait_until(lambda: len(sim.submitted) == 6, within=30)  # only 2 is left
            await wait_until(lambda: batch_of(gw).runners["expiry@2030-12-05"].state == "done")
            assert [r[0] for r in await runs(gw)] == [
                "expiry@2030-12-01",
                "expiry@2030-12-02",
                "expiry@2030-12-05",
            ]
            contact_ids = await gw.gateway.ledger.writer.run(
                lambda c: c.execute(
                    "SELECT contact_id FROM contact_ledger WHERE event = 'allowed'"
                ).fetchall()
            )
            assert len({c for (c,) in contact_ids}) == 6
            assert all(c.startswith("pd-2030-12-0") for (c,) in contact_ids)
    assert len(sim.submitted) == 6
    assert sorted(s.destination_addr for s in sim.submitted[3:]) == [
        "8613900000001",
        "8613900000002",
        "8613900000002",
    ]
