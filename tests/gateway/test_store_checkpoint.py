"""The state database's WAL is copied back into the database by the background checkpointer,
beside the writer, not inside the writer's commits; every row stays readable throughout."""

from __future__ import annotations

import sqlite3

import trio

from gateway.store import FALLBACK_CHECKPOINT_PAGES, open_state_writer

ROWS_PER_COMMIT = 500
COMMITS = 60
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
        with trio.fail_after(10):
            while path.stat().st_size < written // 2:
                await trio.sleep(0.05)  # the main file fills while the writer goes on
        assert writer.checkpoints > 0 and writer.checkpoint_failures == 0
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
        for i in range(5):
            await writer.durable(writer.append("INSERT INTO t VALUES (?, ?)", [(i, PAYLOAD)]))
        with trio.fail_after(5):
            while writer.checkpoint_failures == 0:
                await trio.sleep(0.01)
        count = await writer.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 5
        writer.checkpointer.conn = sqlite3.connect(":memory:", check_same_thread=False)
