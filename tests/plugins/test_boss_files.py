"""boss_files inbound feeds in a real gateway (real SQLite contact control, real profile holder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.testing import open_gateway, wait_until
from tests.plugins.boss_files_helpers import boss_gateway, deliver, feed, running

PROFILE_COLUMNS = '["msisdn", "imsi", "brand", "region"]'


def profile_feed(
    source: Path, *, encoding: str = "gbk", kind: str = "profiles", name: str = "profiles"
) -> str:
    columns = (
        PROFILE_COLUMNS if kind == "profiles" else '["op", "msisdn", "imsi", "brand", "region"]'
    )
    return f"""
[plugins.boss_files.feeds.{name}]
kind = "{kind}"
source = "{source}"
pattern = "{"PROFILE" if kind == "profiles" else "DELTA"}_*.txt"
encoding = "{encoding}"
separator = "|"
columns = {columns}
"""


def list_feed(source: Path, *, kind: str = "list", allow_empty: bool = False) -> str:
    columns = '["msisdn", "reason"]' if kind == "list" else '["op", "msisdn", "reason"]'
    return f"""
[plugins.boss_files.feeds.{kind}]
kind = "{kind}"
source = "{source}"
pattern = "{kind.upper()}_*.txt"
category = "blacklist"
columns = {columns}
allow_empty = {"true" if allow_empty else "false"}
"""


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


async def test_gbk_profile_file_is_loaded_and_archived(tmp_path: Path, inbox: Path) -> None:
    """A GBK profile file with a matching check file becomes the profile index; the pair is archived and recorded."""
    async with boss_gateway(tmp_path, profile_feed(inbox)) as gw:
        deliver(
            inbox,
            "PROFILE_20261130.txt",
            ["13800138000|460001234567890|全球通|北京", "0139 0013 9000||动感地带|上海"],
            encoding="gbk",
        )
        assert await feed(gw, "profiles").poll_once() == [("PROFILE_20261130.txt", "applied")]
        index = gw.gateway.profiles.index
        row = index.row_by_msisdn("8613800138000")
        assert len(index) == 2 and index.value("brand", row) == "全球通"
        assert index.value("region", index.row_by_msisdn("8613900139000")) == "上海"
        assert not list(inbox.iterdir())
        archived = sorted(
            p.name for p in (tmp_path / "work" / "archive" / "profiles").rglob("*") if p.is_file()
        )
        assert archived == ["PROFILE_20261130.txt", "PROFILE_20261130.txt.chk"]
        reply = await gw.command("bossfiles", "applied")
        assert [r["name"] for r in reply.data] == ["PROFILE_20261130.txt"]


async def test_gb18030_profile_file(tmp_path: Path, inbox: Path) -> None:
    """GB18030 text, including a character outside GBK (four bytes), loads intact."""
    async with boss_gateway(tmp_path, profile_feed(inbox, encoding="gb18030")) as gw:
        deliver(inbox, "PROFILE_1.txt", ["13800138000||全球通𠀀|北京"], encoding="gb18030")
        assert (await feed(gw, "profiles").poll_once())[0][1] == "applied"
        index = gw.gateway.profiles.index
        assert index.value("brand", index.row_by_msisdn("13800138000")) == "全球通𠀀"


@pytest.mark.parametrize(
    "records,checksum,reason",
    [
        (3, None, "record count: check file says 3, the file has 2"),
        (None, "0" * 32, "md5 checksum differs"),
    ],
)
async def test_check_file_disagreement_quarantines(
    tmp_path: Path, inbox: Path, records: int | None, checksum: str | None, reason: str
) -> None:
    """A wrong record count or checksum in the check file sends the pair to quarantine with a report; the index is untouched."""
    async with boss_gateway(tmp_path, profile_feed(inbox)) as gw:
        deliver(
            inbox,
            "PROFILE_1.txt",
            ["13800138000||a|b", "13900139000||a|b"],
            encoding="gbk",
            records=records,
            checksum=checksum,
        )
        assert (await feed(gw, "profiles").poll_once())[0][1] == "quarantined"
        assert len(gw.gateway.profiles.index) == 0
        report = (
            tmp_path / "work" / "quarantine" / "profiles" / "PROFILE_1.txt.report.txt"
        ).read_text()
        assert reason in report
        assert (tmp_path / "work" / "quarantine" / "profiles" / "PROFILE_1.txt.chk").exists()
        log = (await gw.command("bossfiles", "quarantine")).data
        assert (
            log[0]["name"] == "PROFILE_1.txt"
            and reason in log[0]["reasons"][0] + log[0]["reasons"][-1]
        )


async def test_bad_record_rejects_the_whole_list_with_every_line(
    tmp_path: Path, inbox: Path
) -> None:
    """A list file with a malformed line and a bad number changes nothing; the report names both lines."""
    async with boss_gateway(tmp_path, list_feed(inbox)) as gw:
        lists = gw.gateway.contact_control.lists
        await lists.add("blacklist", "8613700137000")
        deliver(
            inbox,
            "LIST_1.txt",
            ["13800138000|fraud", "13800138001|x|y", "13800138002|ok", "12ab|bad"],
        )
        assert (await feed(gw, "list").poll_once())[0][1] == "quarantined"
        report = (tmp_path / "work" / "quarantine" / "list" / "LIST_1.txt.report.txt").read_text()
        assert "line 2: expected 2 fields, got 3" in report
        assert "line 4: column 'msisdn'" in report
        assert lists.size("blacklist") == 1


async def test_full_list_replaces_and_delta_adds_and_removes(tmp_path: Path, inbox: Path) -> None:
    """A full list file replaces the blacklist through contact control; a delta adds and removes; decisions follow."""
    async with boss_gateway(tmp_path, list_feed(inbox) + list_feed(inbox, kind="list_delta")) as gw:
        lists = gw.gateway.contact_control.lists
        await lists.add("blacklist", "8613700137000")
        deliver(inbox, "LIST_1.txt", ["13800138000|fraud", "+86 138 0013 8001|abuse"])
        assert (await feed(gw, "list").poll_once())[0][1] == "applied"
        assert lists.size("blacklist") == 2
        assert [e["category"] for e in lists.entries_for("8613800138001")] == ["blacklist"]
        assert lists.entries_for("8613700137000") == []
        deliver(inbox, "LIST_DELTA_1.txt", ["D|13800138000|", "A|13900139000|complaint"])
        assert (await feed(gw, "list_delta").poll_once())[0][1] == "applied"
        assert lists.entries_for("8613800138000") == []
        assert lists.entries_for("8613900139000")[0]["reason"] == "complaint"


async def test_empty_full_list_needs_allow_empty(tmp_path: Path, inbox: Path) -> None:
    """An empty full list file is refused (fail closed) unless the feed says allow_empty."""
    async with boss_gateway(tmp_path, list_feed(inbox)) as gw:
        lists = gw.gateway.contact_control.lists
        await lists.add("blacklist", "8613700137000")
        deliver(inbox, "LIST_1.txt", [])
        assert (await feed(gw, "list").poll_once())[0][1] == "quarantined"
        assert lists.size("blacklist") == 1
    async with boss_gateway(tmp_path / "b", list_feed(inbox, allow_empty=True)) as gw:
        lists = gw.gateway.contact_control.lists
        await lists.add("blacklist", "8613700137000")
        deliver(inbox, "LIST_2.txt", [])
        assert (await feed(gw, "list").poll_once())[0][1] == "applied"
        assert lists.size("blacklist") == 0


async def test_duplicate_delivery_is_not_applied_twice(tmp_path: Path, inbox: Path) -> None:
    """The same file (name and checksum) delivered again is quarantined as a duplicate, not applied."""
    async with boss_gateway(tmp_path, list_feed(inbox, kind="list_delta")) as gw:
        lists = gw.gateway.contact_control.lists
        lines = ["A|13800138000|x"]
        deliver(inbox, "LIST_DELTA_1.txt", lines)
        assert (await feed(gw, "list_delta").poll_once())[0][1] == "applied"
        await lists.remove("blacklist", "8613800138000")  # an operator removed it since
        deliver(inbox, "LIST_DELTA_1.txt", lines)
        assert (await feed(gw, "list_delta").poll_once())[0][1] == "quarantined"
        assert lists.entries_for("8613800138000") == []
        report = (
            tmp_path / "work" / "quarantine" / "list_delta" / "LIST_DELTA_1.txt.report.txt"
        ).read_text()
        assert "duplicate" in report
        assert await running(gw).state.count_applied("LIST_DELTA_1.txt") == 1


async def test_file_still_growing_waits(tmp_path: Path, inbox: Path) -> None:
    """A data file whose size changes is not taken until it has been stable for settle_time."""
    async with boss_gateway(tmp_path, list_feed(inbox), settle="5s") as gw:
        f = feed(gw, "list")
        full = ["13800138000|a", "13800138001|b", "13800138002|c"]
        data = deliver(inbox, "LIST_1.txt", full)
        (inbox / "LIST_1.txt").write_bytes(data[:20])  # the writer is still going
        assert await f.poll_once(now=1000.0) == []
        (inbox / "LIST_1.txt").write_bytes(data[:30])
        assert await f.poll_once(now=1004.0) == []  # grew: the clock starts again
        (inbox / "LIST_1.txt").write_bytes(data)
        assert await f.poll_once(now=1006.0) == []
        assert await f.poll_once(now=1010.0) == []  # stable 4 s only
        assert await f.poll_once(now=1011.0) == [("LIST_1.txt", "applied")]
        assert gw.gateway.contact_control.lists.size("blacklist") == 3


async def test_data_file_without_check_file_waits(tmp_path: Path, inbox: Path) -> None:
    """No check file, no load: the data file stays where it is."""
    async with boss_gateway(tmp_path, list_feed(inbox)) as gw:
        deliver(inbox, "LIST_1.txt", ["13800138000|a"])
        (inbox / "LIST_1.txt.chk").unlink()
        assert await feed(gw, "list").poll_once() == []
        assert (inbox / "LIST_1.txt").exists()


async def test_profile_delta_and_restart(tmp_path: Path, inbox: Path) -> None:
    """A delta updates, adds and deletes on the last full file; after a restart the merged index is restored."""
    feeds = profile_feed(inbox, encoding="utf-8") + profile_feed(
        inbox, encoding="utf-8", kind="profiles_delta", name="delta"
    )
    async with boss_gateway(tmp_path, feeds) as gw:
        deliver(
            inbox,
            "PROFILE_1.txt",
            ["13800138000||gold|bj", "13800138001||silver|sh", "13800138002||bronze|gz"],
        )
        assert (await feed(gw, "profiles").poll_once())[0][1] == "applied"
        deliver(
            inbox,
            "DELTA_2.txt",
            ["U|13800138000||platinum|bj", "D|13800138001|||", "A|13800138009||new|sz"],
        )
        assert (await feed(gw, "delta").poll_once())[0][1] == "applied"
        index = gw.gateway.profiles.index
        assert len(index) == 3
        assert index.value("brand", index.row_by_msisdn("8613800138000")) == "platinum"
        assert index.row_by_msisdn("8613800138001") == -1
    async with open_gateway(
        tmp_path,
        f'\n[plugins.boss_files]\nwork_dir = "{tmp_path / "work"}"\npoll_interval = "1h"\n' + feeds,
    ) as gw:
        await wait_until(lambda: running(gw).restored is not None)
        index = gw.gateway.profiles.index
        assert (
            len(index) == 3 and index.value("region", index.row_by_msisdn("8613800138009")) == "sz"
        )


async def test_profile_delta_without_full_is_quarantined(tmp_path: Path, inbox: Path) -> None:
    """A delta with no full file applied before has no base: quarantined, saying so."""
    async with boss_gateway(
        tmp_path, profile_feed(inbox, encoding="utf-8", kind="profiles_delta", name="delta")
    ) as gw:
        deliver(inbox, "DELTA_1.txt", ["A|13800138000||x|y"])
        assert (await feed(gw, "delta").poll_once())[0][1] == "quarantined"


async def test_bad_profile_lines_named_in_report(tmp_path: Path, inbox: Path) -> None:
    """A profile file with bad lines is rejected; the report names every bad line of the data file."""
    async with boss_gateway(tmp_path, profile_feed(inbox, encoding="utf-8")) as gw:
        deliver(
            inbox,
            "PROFILE_1.txt",
            ["13800138000||a|b", "notanumber||a|b", "13800138001||a", "139||a|b"],
        )
        assert (await feed(gw, "profiles").poll_once())[0][1] == "quarantined"
        report = (
            tmp_path / "work" / "quarantine" / "profiles" / "PROFILE_1.txt.report.txt"
        ).read_text()
        assert "line 2: column 'msisdn'" in report
        assert "line 3: expected 4 fields, got 3" in report
        assert "line 4: column 'msisdn'" in report


async def test_catalogue_and_subscriptions_queryable(tmp_path: Path, inbox: Path) -> None:
    """Product catalogue and subscriptions are stored and answered by `gatewayctl bossfiles`."""
    feeds = f"""
[plugins.boss_files.feeds.catalogue]
kind = "catalogue"
source = "{inbox}"
pattern = "PROD_*.txt"
columns = ["product_id", "name", "price"]

[plugins.boss_files.feeds.subs]
kind = "subscriptions"
source = "{inbox}"
pattern = "SUBS_*.txt"
encoding = "gbk"
columns = ["msisdn", "product_id", "since"]
"""
    async with boss_gateway(tmp_path, feeds) as gw:
        deliver(inbox, "PROD_1.txt", ["P10|10元流量包|10", "P20|20元流量包|20"])
        deliver(inbox, "SUBS_1.txt", ["13800138000|P10|20260101"], encoding="gbk")
        assert (await feed(gw, "catalogue").poll_once())[0][1] == "applied"
        assert (await feed(gw, "subs").poll_once())[0][1] == "applied"
        assert (await gw.command("bossfiles", "products", "P20")).data == [
            {"product_id": "P20", "name": "20元流量包", "price": "20"}
        ]
        subs = (await gw.command("bossfiles", "subscriptions", "013800138000")).data
        assert subs == [{"msisdn": "8613800138000", "product_id": "P10", "since": "20260101"}]


async def test_duplicate_subscriber_in_profile_file(tmp_path: Path, inbox: Path) -> None:
    """One subscriber on two lines (written two ways) rejects the file with the loader's reason."""
    async with boss_gateway(tmp_path, profile_feed(inbox, encoding="utf-8")) as gw:
        deliver(inbox, "PROFILE_1.txt", ["13800138000||a|b", "+8613800138000||c|d"])
        assert (await feed(gw, "profiles").poll_once())[0][1] == "quarantined"
        report = (
            tmp_path / "work" / "quarantine" / "profiles" / "PROFILE_1.txt.report.txt"
        ).read_text()
        assert "8613800138000 appears on more than one line" in report


async def test_reload_applies_settle_time_and_lists_restart_keys(
    tmp_path: Path, inbox: Path
) -> None:
    """SIGHUP's reload applies a new settle_time to running feeds; a changed feed table is reported as needing a restart."""
    async with boss_gateway(tmp_path, list_feed(inbox), settle="5s") as gw:
        f = feed(gw, "list")
        assert f.settle_time == 5.0
        text = gw.config_path.read_text()
        text = text.replace('settle_time = "5s"', 'settle_time = "0s"').replace(
            'category = "blacklist"', 'category = "greylist"'
        )
        gw.config_path.write_text(text)
        assert gw.daemon.reload() is None
        assert f.settle_time == 0.0
        assert "plugins.boss_files.feeds" in gw.daemon.restart_required
        deliver(inbox, "LIST_1.txt", ["13800138000|a"])
        assert await f.poll_once() == [("LIST_1.txt", "applied")]
        assert (
            gw.gateway.contact_control.lists.size("blacklist") == 1
        )  # the running feed's category


async def test_complaint_list_feed_suppresses_contacts(tmp_path: Path, inbox: Path) -> None:
    """A complaint list delivered by file puts its subscribers on the complaint-sensitive list: contact control suppresses them."""
    from gateway.model import ContactRequest, Outcome

    toml = f"""
[plugins.boss_files.feeds.complaints]
kind = "list_delta"
source = "{inbox}"
pattern = "COMPLAINT_*.txt"
category = "complaint_sensitive"
columns = ["op", "msisdn", "reason"]
"""
    async with boss_gateway(tmp_path, toml) as gw:
        deliver(inbox, "COMPLAINT_1.txt", ["A|13800138000|投诉营销短信"])
        assert (await feed(gw, "complaints").poll_once())[0][1] == "applied"
        control = gw.gateway.contact_control
        hit = await control.decide(
            ContactRequest(contact_id="a", msisdn="8613800138000", campaign_id="c", channel="sms")
        )
        other = await control.decide(
            ContactRequest(contact_id="b", msisdn="8613800138001", campaign_id="c", channel="sms")
        )
        assert hit.outcome == Outcome.SUPPRESSED, hit
        assert "complaint_sensitive" in hit.reason, hit.reason
        assert other.outcome == Outcome.ALLOWED


@pytest.mark.parametrize("left_in_inbox", [True, False], ids=["check-left", "both-moved"])
async def test_an_archive_cut_by_a_crash_is_finished_at_the_next_start(
    tmp_path: Path, inbox: Path, left_in_inbox: bool
) -> None:
    """kill -9 between moving the data file to the archive and marking it archived (the check
    file still in the inbox, or both moved): the next start finishes the archive and marks it
    (it stayed "not archived" for ever, and the check file in the inbox)."""
    import sqlite3

    name = "PROFILE_1.txt"
    async with boss_gateway(tmp_path, profile_feed(inbox)) as gw:
        deliver(inbox, name, ["13800138000|460001234567890|全球通|北京"], encoding="gbk")
        assert await feed(gw, "profiles").poll_once() == [(name, "applied")]
    archive = tmp_path / "work" / "archive" / "profiles"
    (check,) = [p for p in archive.rglob("*.chk")]
    if left_in_inbox:
        check.rename(inbox / check.name)  # as if the kill came between the two moves
    db = tmp_path / "work" / "boss_files.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE applied_files SET archived = 0")
    conn.close()
    async with boss_gateway(tmp_path, profile_feed(inbox)) as gw:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT name, archived FROM applied_files").fetchall() == [
                (name, 1)
            ]
        conn.close()
        assert not list(inbox.iterdir())
        archived = sorted(p.name for p in archive.rglob("*") if p.is_file())
        assert archived == [name, name + ".chk"]
        assert await feed(gw, "profiles").poll_once() == []  # nothing applied again
