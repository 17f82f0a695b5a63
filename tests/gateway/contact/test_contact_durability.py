"""Durability under faults: a flush between decisions, a stalled write, a full disk."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
from contact_helpers import req

from tests.fakes.sqlite_faults import limit_pages


async def test_decisions_continue_after_a_flush_while_traffic_flows(open_sqlite) -> None:
    """A ledger flush (``gatewayctl campaign report``) must not stop later decisions."""
    async with open_sqlite() as cc:
        with trio.fail_after(5):
            assert (await cc.decide(req())).outcome == "allowed"

            async def traffic() -> int:
                n = 0
                for _ in range(50):
                    await cc.decide_many([req(f"86138{n:08d}"), req(f"86139{n:08d}")])
                    n += 1
                return n

            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic)
                for _ in range(5):
                    await cc.ledger.flush()
                    await trio.lowlevel.checkpoint()
            await cc.ledger.flush()
            # the report's flush happened while idle too: the next decision still completes
            assert (await cc.decide(req("8613900000099"))).outcome == "allowed"


async def test_watchdog_is_withheld_while_a_decision_waits_for_durability(
    tmp_path, short_tmp
) -> None:
    """No WATCHDOG=1 while a decision waits past durable_wait_limit; pings resume after."""
    import sqlite3

    from gateway.contact.config import parse_contact_config
    from gateway.contact.sqlite_backend import open_sqlite_contact_control
    from gateway.sdnotify import SdNotifier
    from tests.fakes.notify_socket import NotifySocket

    sock = NotifySocket(str(short_tmp / "n"))
    notifier = SdNotifier({"NOTIFY_SOCKET": sock.env_value, "WATCHDOG_USEC": "100000"})
    config = parse_contact_config({"durable_wait_limit": "0.3s"})
    db = tmp_path / "gateway.sqlite"

    def pings(seconds: float) -> int:
        """WATCHDOG=1 received over the next ``seconds``."""
        import time

        n, end = 0, time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            msg = sock.receive(left)
            n += msg is not None and msg.get("WATCHDOG") == "1"
        return n

    try:
        async with open_sqlite_contact_control(config, db) as cc:
            writer = cc.ledger.writer
            async with trio.open_nursery() as nursery:
                await nursery.start(notifier.serve_watchdog, writer.stall_reason)
                await trio.to_thread.run_sync(pings, 0.3)
                assert await trio.to_thread.run_sync(pings, 0.2) >= 2  # moving: pings
                blocker = sqlite3.connect(db, isolation_level=None)
                blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
                decided = trio.Event()

                async def decide() -> None:
                    await cc.decide(req())
                    decided.set()

                nursery.start_soon(decide)
                await trio.sleep(0.5)  # past the limit: pings stop
                await trio.to_thread.run_sync(pings, 0.05)  # drain those sent before
                assert await trio.to_thread.run_sync(pings, 0.5) == 0
                assert writer.stall_reason() is not None and not decided.is_set()
                blocker.execute("COMMIT")
                blocker.close()
                with trio.fail_after(5):
                    await decided.wait()
                assert await trio.to_thread.run_sync(pings, 0.3) >= 1  # moving again
                nursery.cancel_scope.cancel()
    finally:
        sock.close()


@pytest.mark.parametrize("state_writer", ["thread", "process"])
async def test_a_full_disk_refuses_decisions_releases_them_and_resumes(
    open_sqlite, captured_logs, state_writer
) -> None:
    """Disk full: decisions fail naming the database, hold no reservation, and resume after
    (with the writer in a thread and in a writer process: the limit is set on the writing
    connection, the child's in the second case)."""
    from gateway.errors import StoreError

    cap1 = {
        "caps": {"sms_day": {"channel": "sms", "limit": 1, "window": "day", "scope": "channel"}},
        "state_writer": state_writer,
    }
    async with open_sqlite(cap1) as cc:
        writer = cc.ledger.writer
        assert (writer.remote is not None) == (state_writer == "process")
        fill = writer.setup if state_writer == "thread" else writer.call

        await cc.decide(req("8613800000001"))  # the tables have their first pages
        await fill(limit_pages, None)
        with pytest.raises(StoreError, match=r"gateway\.sqlite.*full"):
            for i in range(2000):  # until the pages in hand are used up
                await cc.decide_many([req(f"86139{i:08d}{j}") for j in range(5)])
        failed_msisdn = f"86139{i:08d}0"
        assert await cc.current_contacts(failed_msisdn) == []  # released in memory
        logged = [r for r in captured_logs.records() if r["event"] == "store.write_failed"]
        assert len(logged) == 1 and "gateway.sqlite" in logged[0]["path"]
        await fill(limit_pages, 1_000_000)  # space returns
        assert (await cc.decide(req(failed_msisdn))).outcome == "allowed"
        assert any(r["event"] == "store.write_recovered" for r in captured_logs.records())
