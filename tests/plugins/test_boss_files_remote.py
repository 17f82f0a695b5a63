"""boss_files over real FTP (pyftpdlib) and SFTP (asyncssh) servers on loopback; target lists; the daily report."""

from __future__ import annotations

import shutil
from pathlib import Path

from adapters.ifile import CheckFile, FileTally, compare
from gateway.model import ContactRequest
from tests.adapters.ifile.servers import PASSWORD, USER, ftp_server, sftp_server
from tests.plugins.boss_files_helpers import boss_gateway, deliver, feed, running

ROOT = Path(__file__).resolve().parents[2]


def remote_feed(url: str, password_file: Path, extra: str = "") -> str:
    return f"""
[plugins.boss_files.feeds.profiles]
kind = "profiles"
source = "{url}"
password_file = "{password_file}"
timeout = "10s"
pattern = "PROFILE_*.txt"
encoding = "gbk"
columns = ["msisdn", "brand"]
{extra}
"""


async def test_profiles_fetched_over_ftp(tmp_path: Path) -> None:
    """A profile pair on an FTP server is fetched, verified, applied, removed from the server, archived locally."""
    root = tmp_path / "ftp"
    (root / "out").mkdir(parents=True)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    with ftp_server(root) as server:
        url = f"ftp://{USER}@{server.host}:{server.port}/out"
        async with boss_gateway(tmp_path / "gw", remote_feed(url, pw)) as gw:
            deliver(
                root / "out",
                "PROFILE_1.txt",
                ["13800138000|全球通", "13900139000|神州行"],
                encoding="gbk",
            )
            assert await feed(gw, "profiles").poll_once() == [("PROFILE_1.txt", "applied")]
            index = gw.gateway.profiles.index
            assert index.value("brand", index.row_by_msisdn("8613900139000")) == "神州行"
            assert list((root / "out").iterdir()) == []
            archive = tmp_path / "gw" / "work" / "archive" / "profiles"
            assert {p.name for p in archive.rglob("PROFILE_1*")} == {
                "PROFILE_1.txt",
                "PROFILE_1.txt.chk",
            }


async def test_profiles_fetched_over_sftp_with_known_hosts(tmp_path: Path) -> None:
    """The same over SFTP, with the server's host key checked against a known_hosts file; a bad pair is quarantined."""
    root = tmp_path / "sftp"
    (root / "out").mkdir(parents=True)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    with sftp_server(root) as server:
        url = f"sftp://{USER}@{server.host}:{server.port}/out"
        toml = remote_feed(url, pw, f'known_hosts = "{server.known_hosts}"')
        async with boss_gateway(tmp_path / "gw", toml) as gw:
            deliver(root / "out", "PROFILE_1.txt", ["13800138000|全球通"], encoding="gbk")
            deliver(root / "out", "PROFILE_2.txt", ["13800138000|x"], encoding="gbk", records=7)
            outcomes = await feed(gw, "profiles").poll_once()
            assert outcomes == [("PROFILE_1.txt", "applied"), ("PROFILE_2.txt", "quarantined")]
            assert len(gw.gateway.profiles.index) == 1


async def test_sftp_host_key_mismatch_fetches_nothing(tmp_path: Path) -> None:
    """A server whose host key is not the known one is refused: nothing fetched, the error logged, the daemon up."""
    root = tmp_path / "sftp"
    (root / "out").mkdir(parents=True)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    with sftp_server(root) as server:
        wrong = tmp_path / "known_hosts"
        wrong.write_text(
            f"[127.0.0.1]:{server.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtQUPfDDnVwcDDqxDhUUd6Zr1cy9xUqJfPNjz7rAXpO\n"
        )
        toml = remote_feed(
            f"sftp://{USER}@{server.host}:{server.port}/out", pw, f'known_hosts = "{wrong}"'
        )
        async with boss_gateway(tmp_path / "gw", toml) as gw:
            deliver(root / "out", "PROFILE_1.txt", ["13800138000|x"], encoding="gbk")
            f = feed(gw, "profiles")
            try:
                await f.poll_once()
            except OSError as exc:
                assert "sftp://boss@127.0.0.1" in str(exc)
            else:
                raise AssertionError("a wrong host key was accepted")
            assert (root / "out" / "PROFILE_1.txt").exists()


async def test_target_list_goes_to_the_campaign(tmp_path: Path) -> None:
    """A target-list file named after a campaign becomes that campaign's target members (normalised)."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    shutil.copy(ROOT / "etc" / "campaigns" / "missed_calls.toml", campaigns / "missed_calls.toml")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    toml = f"""
[plugins.boss_files.feeds.targets]
kind = "targets"
source = "{inbox}"
pattern = "*_TARGET_*.txt"
campaign_pattern = "^(?P<campaign>.+)_TARGET_"
columns = ["msisdn"]

[campaigns]
directory = "{campaigns}"
areas_file = ""
"""
    async with boss_gateway(tmp_path / "gw", toml) as gw:
        deliver(inbox, "missed-calls_TARGET_20261130.txt", ["13800138000", "+8613900139000"])
        deliver(inbox, "nosuch_TARGET_20261130.txt", ["13800138000"])
        outcomes = dict(await feed(gw, "targets").poll_once())
        assert outcomes == {
            "missed-calls_TARGET_20261130.txt": "applied",
            "nosuch_TARGET_20261130.txt": "quarantined",
        }
        cdef = gw.gateway.campaigns.get("missed-calls")
        assert cdef.target_members == frozenset({8613800138000, 8613900139000})


async def test_daily_report_written_with_check_file_and_pushed_by_ftp(tmp_path: Path) -> None:
    """The execution report counts the day's decisions per campaign and channel, agrees with its check file, and reaches the FTP server."""
    root = tmp_path / "ftp"
    (root / "in").mkdir(parents=True)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    with ftp_server(root) as server:
        toml = f"""
[plugins.boss_files.report]
enabled = true
timezone = "UTC"
backoff = "0.05s"

[[plugins.boss_files.report.destinations]]
target = "ftp://{USER}@{server.host}:{server.port}/in"
password_file = "{pw}"

[contact.caps.sms_daily]
scope = "channel"
channel = "sms"
window = "day"
limit = 1
"""
        async with boss_gateway(tmp_path / "gw", toml) as gw:
            control = gw.gateway.contact_control
            for i in range(3):
                request = ContactRequest(
                    contact_id=f"c{i}", msisdn="8613800138000", campaign_id="camp-1", channel="sms"
                )
                await control.decide(request)
            await gw.gateway.ledger.flush()
            import datetime as dt

            day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
            reply = await gw.command("bossfiles", "report", day)
            name = reply.data["file"]
            report = running(gw).report
            assert await report.push_pending() == 1
            data = (root / "in" / name).read_bytes()
            lines = data.decode().splitlines()
            assert f"{day}|camp-1|sms|contacts||1" in lines
            assert any(
                line.startswith(f"{day}|camp-1|sms|suppressed|") and line.endswith("|2")
                for line in lines
            )
            check = CheckFile.parse((root / "in" / (name + ".chk")).read_bytes())
            tally = FileTally()
            tally.feed(data)
            assert compare(check, tally, name) == []
            assert await report.push_pending() == 0  # pushed once


async def test_report_push_retries_then_succeeds_later(tmp_path: Path) -> None:
    """A destination that refuses connections gets every retry, the report stays pending, and goes out once the server is up."""
    import socket

    with socket.socket() as probe:  # a free port, nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "dest"
    (dest / "in").mkdir(parents=True)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    toml = f"""
[plugins.boss_files.report]
enabled = true
timezone = "UTC"
retries = 2
backoff = "0.01s"

[[plugins.boss_files.report.destinations]]
target = "ftp://{USER}@127.0.0.1:{port}/in"
password_file = "{pw}"
timeout = "2s"
"""
    async with boss_gateway(tmp_path / "gw", toml) as gw:
        report = running(gw).report
        name = (await gw.command("bossfiles", "report", "20261129")).data["file"]
        assert await report.push_pending() == 0
        assert report.failed_attempts == 3  # the first try and two retries
        import threading

        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(dest), perm="elradfmwMT")
        handler = type("H", (FTPHandler,), {"authorizer": authorizer})
        server = FTPServer(("127.0.0.1", port), handler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"timeout": 0.05}, daemon=True
        )
        thread.start()
        try:
            assert await report.push_pending() == 1
        finally:
            server.close_all()
            thread.join(5)
        assert (dest / "in" / name).exists() and (dest / "in" / f"{name}.chk").exists()


def test_report_time_is_the_next_occurrence() -> None:
    """The report is due at the configured local time today if still ahead, else tomorrow."""
    import datetime as dt

    from plugins.boss_files.config import ReportConfig
    from plugins.boss_files.report import ReportWriter

    writer = ReportWriter(
        None, ReportConfig(at="01:00", timezone="UTC"), None, Path("/nonexistent"), None
    )  # type: ignore[arg-type]
    now = dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.UTC)
    assert writer._next_run(now) == dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)
    assert writer._next_run(now.replace(hour=1)) == dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
