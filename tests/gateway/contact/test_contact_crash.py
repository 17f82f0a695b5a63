"""Crash test: a process making decisions is killed with SIGKILL; nothing committed is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control

CHILD = Path(__file__).with_name("crash_child.py")


def _run_and_kill(db: Path, tag: str, lines_before_kill: int) -> tuple[set[str], set[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), "30s", tag], stdout=subprocess.PIPE, text=True
    )
    allowed, committed = set(), set()
    assert proc.stdout is not None
    try:
        for n, line in enumerate(proc.stdout):
            kind, _, cid = line.strip().partition(" ")
            if kind in ("A", "C") and cid:
                (committed if kind == "C" else allowed).add(cid)
            if n >= lines_before_kill:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    return allowed, committed


@pytest.mark.slow
async def test_sigkill_loses_no_committed_contact(tmp_path: Path) -> None:
    """After each kill -9 every committed contact is in the ledger and counted; reservations expire."""
    db = tmp_path / "gateway.sqlite"
    rng = random.Random(os.getpid())
    config = parse_contact_config(
        {
            "reservation_timeout": "30s",
            "caps": {"d": {"scope": "channel", "window": "day", "limit": 3}},
        }
    )
    all_committed: set[str] = set()
    for round_ in range(3):
        allowed, committed = await trio.to_thread.run_sync(
            _run_and_kill, db, f"r{round_}", rng.randint(20, 1500)
        )
        all_committed |= committed
        assert committed <= allowed
        async with open_sqlite_contact_control(config, db) as cc:
            rows = await cc.ledger.query(limit=10**7)
            ledger_committed = {r["contact_id"] for r in rows if r["event"] == "committed"}
            ledger_allowed = {r["contact_id"] for r in rows if r["event"] == "allowed"}
            assert all_committed <= ledger_committed
            assert allowed <= ledger_allowed
            live = {
                c["contact_id"]
                for m in {r["msisdn"] for r in rows}
                for c in await cc.current_contacts(m)
            }
            assert all_committed <= live  # committed contacts still count after restart
            for m in {r["msisdn"] for r in rows}:  # and no cap is exceeded by the rebuild
                per_channel = [c["channel"] for c in await cc.current_contacts(m)]
                assert max(per_channel.count("sms"), per_channel.count("ivr")) <= 3
    later = time.time() + 31  # past every reservation's timeout
    async with open_sqlite_contact_control(config, db, clock=lambda: later) as cc:
        assert cc.open_reservations() == 0
        open_before = len(cc._open)  # reservations rebuilt from the ledger, all past their timeout
        assert await cc.sweep() == open_before  # each ends as expired ...
        assert await cc.sweep() == 0  # ... exactly once
        for m in {r["msisdn"] for r in await cc.ledger.query(limit=10**7)}:
            assert all(c["state"] == "committed" for c in await cc.current_contacts(m))
