"""A real gatewayd killed (SIGKILL) in the middle of loading a profile file: after the restart
the file has been applied exactly once, wholly (never half, never twice)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.daemon_process import GatewaydProcess
from tests.plugins.boss_files_helpers import deliver

LINES = 400_000


def applied_rows(work: Path) -> list[tuple[str, int, int]]:
    db = work / "boss_files.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, records, archived FROM applied_files").fetchall()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at,delay",
    [("boss_files.loading", 0.0), ("boss_files.profiles_swapped", 0.0)],
    ids=["mid-load", "after-swap"],
)
def test_kill9_during_profile_load_applies_once(
    gateway_config: Callable[..., Path],
    gatewayd: Callable[..., GatewaydProcess],
    short_tmp: Path,
    kill_at: str,
    delay: float,
) -> None:
    """kill -9 mid-load (or just after the swap) and restart: one applied row, the whole index, the pair archived."""
    inbox, work = short_tmp / "inbox", short_tmp / "work"
    inbox.mkdir()
    config = gateway_config(
        f"""
[plugins.boss_files]
work_dir = "{work}"
poll_interval = "0.1s"
settle_time = "0s"

[plugins.boss_files.feeds.profiles]
kind = "profiles"
source = "{inbox}"
pattern = "PROFILE_*.txt"
encoding = "gbk"
columns = ["msisdn", "brand"]
"""
    )
    first = gatewayd(config)
    first.wait_ready()
    deliver(
        inbox, "PROFILE_1.txt", [f"{13800000000 + i}|全球通" for i in range(LINES)], encoding="gbk"
    )
    # Kill as soon as the event is in the log (polled every 5 ms): on a fast machine the
    # 400,000-line load takes well under half a second from "loading" to "applied".
    first.wait_for_event(kill_at, timeout=60, poll=0.005)
    time.sleep(delay)
    first.kill()
    if kill_at == "boss_files.loading":
        assert not first.events("boss_files.applied"), "the load finished before the kill"
        assert applied_rows(work) == []  # nothing half-recorded
        assert (inbox / "PROFILE_1.txt").exists()
    second = gatewayd(config)
    second.wait_ready()
    if kill_at == "boss_files.loading":
        second.wait_for_event("boss_files.applied", timeout=90)
    else:
        second.wait_for_event("boss_files.profiles_restored", timeout=90)
    deadline = time.monotonic() + 30
    while applied_rows(work) != [("PROFILE_1.txt", LINES, 1)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert applied_rows(work) == [("PROFILE_1.txt", LINES, 1)]
    status = second.request("status")["data"]
    assert status["plugins"]["boss_files"]["status"]["feeds"]["profiles"]["quarantined"] == 0
    assert (
        status["plugins"]["gateway.campaigns.plugin"]["status"]["profiles"]["subscribers"] == LINES
    )
    archived = sorted(p.name for p in (work / "archive" / "profiles").rglob("*") if p.is_file())
    assert archived == ["PROFILE_1.txt", "PROFILE_1.txt.chk"]
    assert not (inbox / "PROFILE_1.txt").exists()
    snapshots = list((work / "profiles").glob("snapshot-*.csv"))
    assert len(snapshots) == 1
    assert sum(1 for _ in snapshots[0].open("rb")) == LINES + 1  # header + every line
    reply = second.request("bossfiles", "applied")  # over the control socket, as gatewayctl
    assert reply["ok"] and [r["name"] for r in reply["data"]] == ["PROFILE_1.txt"]
    second.kill()
