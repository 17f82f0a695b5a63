"""``StateWriter.executed``: an op's result once it has run, before its transaction commits.

The outbox takes its messages this way (the lease need not be durable first: only a later
``mark_sending`` lets a message go out). These tests hold the writer's COMMIT at a gate, or
make it fail, with a connection proxy that passes everything else through.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
import trio

from gateway.errors import StoreError
from gateway.store import StateWriter, open_sqlite


class GatedConnection:
    """The writer's connection with a COMMIT that waits at ``gate`` or fails while ``fail``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.commits = 0

    def execute(self, sql, *args):
        if sql == "COMMIT":
            if not self.gate.wait(10):
                raise AssertionError("the gate was never opened")
            if self.fail:
                raise sqlite3.OperationalError("disk I/O error")
            self.commits += 1
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _create(conn) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")


def _insert(conn, value: str) -> int:
    return conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).lastrowid


async def _writer(tmp_path, nursery) -> tuple[StateWriter, GatedConnection]:
    path = tmp_path / "s.sqlite"
    conn = open_sqlite(path)
    _create(conn)
    gated = GatedConnection(conn)
    writer = StateWriter(gated, path, reader=None)  # type: ignore[arg-type]
    await nursery.start(writer.serve)
    return writer, gated


async def test_executed_returns_before_the_commit(tmp_path):
    """The op's result is there while COMMIT is still held; durable waits for the commit."""
    async with trio.open_nursery() as nursery:
        writer, gated = await _writer(tmp_path, nursery)
        gated.gate.clear()
        op = writer.submit(_insert, "a")
        with trio.fail_after(5):
            assert await writer.executed(op) == 1
        assert not op[4].done.is_set()  # COMMIT waits at the gate
        assert gated.commits == 0
        with trio.move_on_after(0.1):
            await writer.durable(op[4])
            pytest.fail("durable before the commit")
        gated.gate.set()
        with trio.fail_after(5):
            await writer.durable(op[4])
        assert gated.commits == 1
        nursery.cancel_scope.cancel()


async def test_a_commit_that_fails_after_the_ops_ran(tmp_path):
    """executed has answered; durable then raises and nothing of the batch is in the database."""
    async with trio.open_nursery() as nursery:
        writer, gated = await _writer(tmp_path, nursery)
        gated.gate.clear()
        gated.fail = True
        op = writer.submit(_insert, "lost")
        assert await writer.executed(op) == 1
        gated.gate.set()
        with pytest.raises(StoreError, match=r"s\.sqlite"):
            await writer.durable(op[4])
        gated.fail = False
        assert await writer.call(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
        nursery.cancel_scope.cancel()


async def test_results_of_a_committed_batch_need_no_scheduler_round_each(tmp_path):
    """Going through the results of a batch already committed does not wait a scheduler
    round per result (under load that put tens of milliseconds between a commit and its last
    waiter): another runnable task gets no turn in between."""
    async with trio.open_nursery() as nursery:
        writer, _gated = await _writer(tmp_path, nursery)
        ops = [writer.submit(_insert, f"v{i}") for i in range(100)]
        with trio.fail_after(5):
            await writer.durable(ops[-1][4])
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await trio.lowlevel.checkpoint()

        nursery.start_soon(other)
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        assert turns > 0  # it runs whenever this task yields
        turns = 0
        results = [await writer.result(op) for op in ops]
        results += [await writer.executed(op) for op in ops]
        assert results == list(range(1, 101)) * 2
        assert turns == 0
        nursery.cancel_scope.cancel()
