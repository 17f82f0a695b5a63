"""The state database's group commits in a writer process (``[contact] state_writer``).

Real child processes over a real socket pair, a real SQLite file: batches commit there,
an op that fails fails alone, a batch that does not pickle commits in the daemon, the child
outlives SIGTERM (the daemon's last commits come after it) and ends with the daemon (even a
killed one), and a child that dies stops the writer instead of guessing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from gateway.errors import StoreError, WriterProcessDied
from gateway.model import ContactRequest
from gateway.outbox import store as outbox_store
from gateway.store import open_state_writer
from gateway.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _row(cid: str) -> tuple:
    request = ContactRequest(
        contact_id=cid, msisdn="8613800000000", campaign_id="c1", channel="sms"
    )
    return (
        cid,
        "sms",
        "c1",
        "8613800000000",
        0,
        outbox_store.dump_request(request),
        0.0,
        1e12,
        0.0,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _count(writer) -> int:
    return await writer.run(
        lambda c: c.execute("SELECT count(*) FROM outbox_entries").fetchone()[0]
    )


async def test_batches_commit_in_the_writer_process(tmp_path):
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        assert writer.remote is not None and writer.remote.proc.pid != os.getpid()
        op = writer.submit(outbox_store.insert_entries, [_row("a"), _row("b")])
        assert await writer.executed(op) == ["a", "b"]  # answered from the child
        assert await writer.result(op) == ["a", "b"]
        taken = await writer.call(outbox_store.take, "sms", 10, 1.0, 2.0)
        assert [r[0] for r in taken] == ["a", "b"]
        assert await _count(writer) == 2
        assert writer.remote.batches >= 2 and writer.local_batches == 0


async def test_an_op_that_fails_fails_alone(tmp_path):
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        good = writer.submit(outbox_store.insert_entries, [_row("a")])
        bad = writer.submit(outbox_store.insert_entries, [(None, *_row("x")[1:])])  # NOT NULL
        also = writer.submit(outbox_store.insert_entries, [_row("c")])
        assert await writer.result(good) == ["a"]
        with pytest.raises(Exception, match="NOT NULL"):
            await writer.result(bad)
        assert await writer.result(also) == ["c"]
        assert await _count(writer) == 2


async def test_a_batch_that_does_not_pickle_commits_here(tmp_path):
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        marker = object()
        result = await writer.call(lambda c: (outbox_store.insert_entries(c, [_row("z")]), marker))
        assert result[1] is marker  # ran in this process: the very object came back
        assert writer.local_batches == 1
        assert await _count(writer) == 1
        await writer.call(outbox_store.insert_entries, [_row("y")])  # and the next goes there
        assert writer.local_batches == 1 and await _count(writer) == 2


async def test_the_child_outlives_sigterm_and_ends_with_the_writer(tmp_path):
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        pid = writer.remote.proc.pid
        os.kill(pid, signal.SIGTERM)  # systemd signals the whole cgroup at stop
        os.kill(pid, signal.SIGINT)
        await trio.sleep(0.2)
        assert await writer.call(outbox_store.insert_entries, [_row("a")]) == ["a"]
    assert not _alive(pid)


async def test_a_child_that_dies_stops_the_writer(tmp_path):
    """The batch in flight may have committed or not: the writer stops (the daemon ends and
    its restart recovers from the database) instead of guessing."""
    with pytest.raises(BaseException) as caught:
        async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
            await writer.setup(outbox_store.create)
            os.kill(writer.remote.proc.pid, signal.SIGKILL)
            await trio.sleep(0.2)
            op = writer.submit(outbox_store.insert_entries, [_row("a")])
            with pytest.raises(StoreError, match="exited"):
                await writer.result(op)
            await trio.sleep_forever()  # the commit loop ends the writer's nursery
    leaves = _leaves(caught.value)
    assert any(isinstance(e, WriterProcessDied) for e in leaves), leaves


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def test_the_child_ends_when_the_daemon_is_killed(tmp_path):
    """kill -9 of the process that owns the writer: its child sees the socket close and exits."""
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {str(ROOT)!r})
        from gateway.outbox import store
        from gateway.store import open_state_writer

        async def main():
            async with open_state_writer({str(tmp_path / "s.sqlite")!r}, process=True) as w:
                await w.setup(store.create)
                print(w.remote.proc.pid, flush=True)
                await trio.sleep_forever()

        trio.run(main)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        child = int(owner.stdout.readline())
        assert _alive(child)
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        owner.kill()
        owner.wait()


def _find(data, key):
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def test_gatewayd_stops_when_its_writer_process_dies(gateway_config, gatewayd):
    """The real daemon with the reference config's writer process: ``status`` names its pid;
    a kill -9 of that process stops the daemon (non-zero exit, a critical log line), the
    supervisor's restart then recovers from the database."""
    config = gateway_config(
        """
        [contact]
        state_writer = "process"

        [outbox]
        scheduler_interval = "0.1s"
        """
    )
    daemon = gatewayd(config)
    status = daemon.wait_ready()
    pid = _find(status, "state_writer_pid")
    assert isinstance(pid, int) and _alive(pid), status
    assert _find(status, "state_writer") == "process"
    os.kill(pid, signal.SIGKILL)
    code = daemon.wait(20)
    assert code != 0
    assert daemon.events("store.writer_process_died")
    # and a clean stop takes its writer process with it
    again = gatewayd(config)
    pid = _find(again.wait_ready(), "state_writer_pid")
    again.signal(signal.SIGTERM)
    assert again.wait(20) == 0
    assert not _alive(pid)


async def test_an_op_the_child_cannot_import_commits_here(tmp_path, monkeypatch):
    """A plugin loaded from a path the writer process does not have: its op pickles here but
    cannot be read there; nothing is written there and the daemon's connection commits it."""
    (tmp_path / "private_ops.py").write_text(
        "def insert(conn, cid):\n"
        "    conn.execute(\"INSERT INTO outbox_deferred VALUES (?, 'sms', '{}', 0)\", (cid,))\n"
        "    return cid\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import private_ops  # type: ignore[import-not-found]

    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        assert await writer.call(private_ops.insert, "p1") == "p1"
        assert writer.remote.unreadable == 1 and writer.local_batches == 1
        assert await writer.call(outbox_store.insert_entries, [_row("a")]) == ["a"]  # still there
        rows = await writer.run(
            lambda c: c.execute("SELECT contact_id FROM outbox_deferred").fetchall()
        )
        assert rows == [("p1",)]


def _watch_sends(writer) -> list[tuple[int, bool]]:
    """Per batch sent to the process: (batches in flight with it, whether the ones ahead of it
    have all run)."""
    sends: list[tuple[int, bool]] = []
    send = writer.remote.send

    async def watching(frame):
        ahead = writer._writing[:-1]
        sends.append((len(writer._writing), all(b.ran.is_set() for b in ahead)))
        await send(frame)

    writer.remote.send = watching
    return sends


async def _slow_batch(writer) -> None:
    """A batch of plain appends the process takes a while over (no function to learn)."""
    await writer.setup(lambda c: c.execute("CREATE TABLE IF NOT EXISTS bulk (x)"))
    writer.append("INSERT INTO bulk VALUES (?)", [(i,) for i in range(400_000)])
    await wait_until(lambda: writer._writing, interval=0.001)


async def test_the_next_batch_is_sent_while_one_commits(tmp_path):
    """While a batch is in the process the next one is sent behind it (two in flight), and
    one more behind that once the first is done: each its own transaction, in order."""
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        await writer.call(outbox_store.insert_entries, [_row("warm")])  # a function it knows
        sends = _watch_sends(writer)
        await _slow_batch(writer)
        second = writer.submit(outbox_store.insert_entries, [_row("a")])
        await wait_until(lambda: len(writer._writing) == 2, interval=0.001)
        third = writer.submit(outbox_store.insert_entries, [_row("b")])
        assert await writer.result(second) == ["a"]
        assert await writer.result(third) == ["b"]
        assert [n for n, _ in sends] == [1, 2, 2]
        # the third went behind the second before the second had run (its function known)
        assert sends[2] == (2, False)
        assert await _count(writer) == 3
        assert writer.failed_batches == 0 and writer.remote.batches >= 4


async def test_no_batch_goes_behind_one_whose_functions_the_process_never_ran(tmp_path):
    """Such a batch may come back unreadable (then it commits here, in its turn): the next one
    waits until it has run."""
    async with open_state_writer(tmp_path / "s.sqlite", process=True) as writer:
        await writer.setup(outbox_store.create)
        sends = _watch_sends(writer)
        await _slow_batch(writer)
        second = writer.submit(outbox_store.insert_entries, [_row("a")])  # not known yet
        await wait_until(lambda: len(writer._writing) == 2, interval=0.001)
        third = writer.submit(outbox_store.insert_entries, [_row("b")])
        await writer.result(third)
        await writer.result(second)
        assert len(sends) == 3
        assert sends[2][1] is True  # sent only once the second had run
        assert await _count(writer) == 2
