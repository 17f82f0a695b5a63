"""The state database's WAL is copied back into the database by the background checkpointer,
beside the writer, not inside the writer's commits; every row stays readable throughout."""

from __future__ import annotations

import sqlite3

import trio

from gateway.store import FALLBACK_CHECKPOINT_PAGES, open_state_writer
from gateway.testing import wait_until

ROWS_PER_COMMIT = 500
COMMITS = 80
PAYLOAD = "x" * 400


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")


async def test_wal_is_checkpointed_in_the_background(tmp_path):
    path = tmp_path / "state.sqlite"
    async with open_state_writer(path, synchronous="normal") as writer:
        await writer.setup(_create)
        (autocheckpoint,) = writer.conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert autocheckpoint == FALLBACK_CHECKPOINT_PAGES  # the commit path does not
        for i in range(COMMITS):
            rows = [(i * ROWS_PER_COMMIT + j, PAYLOAD) for j in range(ROWS_PER_COMMIT)]
            await writer.durable(writer.append("INSERT INTO t VALUES (?, ?)", rows))
        written = COMMITS * ROWS_PER_COMMIT * len(PAYLOAD)  # ~12 MB, far below the fallback
        # the main file fills while the writer goes on (the count moves once the thread is back)
        await wait_until(
            lambda: writer.checkpoints > 0 and path.stat().st_size >= written // 2, within=10
        )
        assert writer.checkpoint_failures == 0
        count = await writer.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == COMMITS * ROWS_PER_COMMIT
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == COMMITS * ROWS_PER_COMMIT


async def test_a_failing_checkpointer_does_not_stop_the_writer(tmp_path):
    path = tmp_path / "state.sqlite"
    async with open_state_writer(path, synchronous="normal") as writer:
        await writer.setup(_create)
        assert writer.checkpointer is not None
        writer.checkpointer.conn.close()  # every checkpoint now fails
        writer.checkpoint_commits = 1  # one after every commit
        for i in range(5):
            await writer.durable(writer.append("INSERT INTO t VALUES (?, ?)", [(i, PAYLOAD)]))
        await wait_until(lambda: writer.checkpoint_failures > 0, within=5)
        count = await writer.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 5
        writer.checkpointer.conn = sqlite3.connect(":memory:", check_same_thread=False)


async def test_a_checkpoint_waits_for_enough_commits(tmp_path):
    """A quiet node does not hop to the checkpointer's thread after every small commit."""
    async with open_state_writer(tmp_path / "state.sqlite", synchronous="normal") as writer:
        await writer.setup(_create)
        writer.checkpoint_commits = 10
        for i in range(9):
            await writer.durable(writer.append("INSERT INTO t VALUES (?, ?)", [(i, PAYLOAD)]))
        await trio.sleep(0.2)
        assert writer.checkpoints == 0
        await writer.durable(writer.append("INSERT INTO t VALUES (?, ?)", [(9, PAYLOAD)]))
        await wait_until(lambda: writer.checkpoints == 1, within=5)
