"""The embedded state store: one SQLite database (WAL) under the state directory.

One writer: :class:`StateWriter` owns the database's only write connection and runs every
write of the contact ledger, the outbox and the lists by group commit in one worker thread
(:func:`open_state_writer`), or, with ``process=True`` (``[contact] state_writer =
"process"``), in a writer process of its own (:mod:`gateway.writer_process`); reads use a
second connection, and WAL lets them go on while it writes. A few rare writers (campaign definitions) still use :class:`SqliteWorker`, a connection
run in a worker thread one call at a time; SQLite serialises them with the writer
(``busy_timeout``). Blocking sqlite3 calls never run in the event loop.

Checkpoints: the writer's connection does not copy the WAL back into the database on its
commits (SQLite's default does, inside every thousandth commit, holding the write lock); a
third connection does it in its own thread with PASSIVE checkpoints after commits, beside the
writer. Should it fall far behind, the writer's own checkpoint at ``FALLBACK_CHECKPOINT_PAGES``
bounds the WAL.

Durability: ``synchronous=FULL`` (the default) makes a committed transaction survive power
loss; ``NORMAL`` survives a crash of the process (kill -9) but not of the machine. A caller
hears "durable" only after the transaction holding its writes committed, whatever the mode.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
import trio

from gateway.errors import StoreError, WriterProcessDied
from gateway.sqlite_base import (  # re-exported: the store's public names
    CHECKPOINT_COMMITS,
    CHECKPOINT_ROWS,
    FALLBACK_CHECKPOINT_PAGES,
    STATE_DIR_MODE,
    STATE_FILE_MODE,
    SYNCHRONOUS_MODES,
    WAL_SIZE_LIMIT,
    commit_batch,
    make_state_dir,
    open_sqlite,
    open_writer_connection,
    secure_state_file,
)

__all__ = [
    "CHECKPOINT_COMMITS",
    "CHECKPOINT_ROWS",
    "FALLBACK_CHECKPOINT_PAGES",
    "STATE_DIR_MODE",
    "STATE_FILE_MODE",
    "SYNCHRONOUS_MODES",
    "WAL_SIZE_LIMIT",
    "SqliteWorker",
    "StateWriter",
    "WriteBatch",
    "commit_batch",
    "make_state_dir",
    "open_sqlite",
    "open_state_writer",
    "open_writer_connection",
    "secure_state_file",
]

T = TypeVar("T")


class SqliteWorker:
    """Runs calls on one sqlite3 connection in a worker thread, one call at a time.

    ``await worker.run(fn, *args)`` calls ``fn(conn, *args)`` in a thread. The call is not
    cancellable once started (a half-run transaction would be worse); cancellation takes
    effect when it returns.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._limiter = trio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, self.conn, *args, limiter=self._limiter)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Like :meth:`run`, inside ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on error)."""
        return await trio.to_thread.run_sync(
            _in_transaction, self.conn, fn, args, limiter=self._limiter
        )

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self.conn.close, limiter=self._limiter)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


# -- the one writer -------------------------------------------------------------------------------


class WriteBatch:
    """What one group commit writes: bulk row appends and operations, in one transaction.

    ``appends`` maps an INSERT statement to its rows (one ``executemany`` each, in the order
    the statements were first used); ``ops`` are ``[fn, args, result, error, batch]`` lists run as
    ``fn(conn, *args)`` after the appends. ``done`` is set once the transaction committed or
    failed (``error``: the whole batch failed; an op's own error is in its list). ``ran`` is
    set earlier, once the ops have run inside the still open transaction (or the batch
    failed): what :meth:`StateWriter.executed` waits for.
    """

    __slots__ = ("appends", "done", "error", "ops", "queued_at", "ran")

    def __init__(self) -> None:
        self.appends: dict[str, list[tuple[Any, ...]]] = {}
        self.ops: list[list[Any]] = []
        self.done = trio.Event()
        self.ran = trio.Event()
        self.error: BaseException | None = None
        self.queued_at = 0.0

    def __bool__(self) -> bool:
        return bool(self.appends or self.ops)


class StateWriter:
    """The one writer of the state database: one connection, one thread, one group commit.

    The contact ledger, the outbox and the lists queue their writes into the pending
    :class:`WriteBatch` without awaiting (``append``, ``submit``), then await
    :meth:`durable` on the batch. :meth:`serve` commits one batch per transaction, in the order
    they filled; while one is being written the next fills, so many callers share one fsync,
    and each returns only once its own writes are durable. Writes queued together with no
    checkpoint in between (a decision and its outbox entry) land in the same transaction.

    Reads go to :attr:`reader`, a second connection (WAL readers do not wait for the writer).

    The object is duck-compatible with :class:`SqliteWorker` for the rare writers that call
    ``transaction`` (list imports) and the readers that call ``run``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | str,
        *,
        reader: SqliteWorker | None = None,
        checkpointer: SqliteWorker | None = None,
        interval: float = 0.0,
        stall_limit: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        remote: Any = None,
        checkpoint_pause: float = 0.05,
        checkpoint_commits: int = CHECKPOINT_COMMITS,
        checkpoint_rows: int = CHECKPOINT_ROWS,
    ) -> None:
        self.conn = conn
        self.path = str(path)
        #: gateway.writer_process.RemoteWriter: batches that pickle commit in its process
        self.remote = remote
        self.reader = reader or SqliteWorker(conn)
        self.checkpointer = checkpointer
        self.checkpoint_pause = checkpoint_pause
        self.checkpoints = 0  # background checkpoints run
        self.checkpoint_failures = 0
        self.checkpoint_commits = checkpoint_commits
        self.checkpoint_rows = checkpoint_rows
        self._since_checkpoint = [0, 0]  # commits, rows and operations
        self._checkpoint_due = trio.Event()
        self.interval = interval
        self.stall_limit = stall_limit
        self.clock = clock
        self._limiter = self.reader._limiter if reader is None else trio.CapacityLimiter(1)
        self._batch = WriteBatch()
        #: batches being written, in order (two when the next was sent while one commits)
        self._writing: list[WriteBatch] = []
        self._wakeup = trio.Event()
        self._running = False
        self.commits = 0
        self.local_batches = 0  # with a writer process: batches committed by this process
        self.rows_written = 0
        self.operations = 0
        self.failed_batches = 0
        self.failing: str | None = None  # the last write error while writes fail

    # -- queueing (no await: what is queued together commits together) ---------------------

    @property
    def pending(self) -> WriteBatch:
        """The batch that the next commit writes."""
        return self._batch

    def _touch(self) -> WriteBatch:
        batch = self._batch
        if not batch:
            batch.queued_at = self.clock()
        self._wakeup.set()
        return batch

    def append(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> WriteBatch:
        """Queue rows for ``executemany(sql, rows)`` in the next commit."""
        batch = self._touch()
        batch.appends.setdefault(sql, []).extend(rows)
        return batch

    def submit(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Queue ``fn(conn, *args)`` for the next commit; the returned op holds its result."""
        batch = self._touch()
        op = [fn, args, None, None, batch]
        batch.ops.append(op)
        return op

    async def durable(self, batch: WriteBatch) -> None:
        """Wait until ``batch`` is committed; StoreError (naming the database) if it failed.

        A batch already committed answers at once, without a checkpoint: a caller going
        through the results of one batch (a hundred submit answers) would otherwise wait a
        whole scheduler round per result, which put tens of milliseconds between a commit
        and the last of its waiters under load."""
        if not batch.done.is_set():
            await batch.done.wait()
        if batch.error is not None:
            raise StoreError(f"state database {self.path}: write failed: {batch.error}")

    async def result(self, op: list[Any]) -> Any:
        """Wait for the commit of ``op``'s batch and return its result (or raise its error)."""
        await self.durable(op[4])
        if op[3] is not None:
            raise op[3]
        return op[2]

    async def executed(self, op: list[Any]) -> Any:
        """``op``'s result as soon as it has run, before its transaction commits.

        For reads that take something in memory (the outbox's leases): the caller may act on
        the result only through a later write that checks the state this op left (a lease is
        honoured only by ``mark_sending``, committed after this batch, or not at all if this
        batch fails). Never for anything that reports "done" to the outside.
        """
        batch = op[4]
        if not batch.ran.is_set():  # (see durable)
            await batch.ran.wait()
        if batch.error is not None:
            raise StoreError(f"state database {self.path}: write failed: {batch.error}")
        if op[3] is not None:
            raise op[3]
        return op[2]

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` in the next group commit; its result once durable."""
        return await self.result(self.submit(fn, *args))

    transaction = call  # SqliteWorker compatibility (list imports, campaign writes)

    async def setup(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the writer connection outside any batch (schema scripts)."""
        return await trio.to_thread.run_sync(fn, self.conn, *args, limiter=self._limiter)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A read, on the read connection (SqliteWorker compatibility)."""
        return await self.reader.run(fn, *args)

    async def flush(self) -> None:
        """Wait until everything queued so far is durable (or failed)."""
        for batch in [*self._writing, self._batch]:
            if batch:
                if self._running:
                    self._wakeup.set()
                else:
                    await self._commit_pending()
                await batch.done.wait()

    # -- health ---------------------------------------------------------------------------------

    def queued_rows(self, sql: str) -> int:
        """Rows of ``sql`` queued or being written, not yet committed."""
        return sum(len(batch.appends.get(sql, ())) for batch in [*self._writing, self._batch])

    def busy(self) -> bool:
        """A commit is being written or waits to be: the writer has no spare time now."""
        return bool(self._writing) or bool(self._batch)

    def oldest_wait(self) -> float:
        """Seconds the oldest write not yet durable has been waiting (0 when none)."""
        now = self.clock()
        oldest = [b.queued_at for b in [*self._writing, self._batch] if b]
        return now - min(oldest) if oldest else 0.0

    def stall_reason(self) -> str | None:
        """Why work is not moving (a write waited past ``stall_limit``), or None."""
        waited = self.oldest_wait()
        if waited > self.stall_limit:
            return f"a write to {self.path} has waited {waited:.1f}s for durability (limit {self.stall_limit:g}s)"
        return None

    # -- the commit loop ---------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until cancelled (then the pending batch is left for :meth:`aclose`)."""
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                if self.checkpointer is not None:
                    nursery.start_soon(self._checkpoints)
                task_status.started()
                while True:
                    if not self._batch:
                        await self._wakeup.wait()
                    # the loop alone replaces the event: a flush only sets it
                    self._wakeup = trio.Event()
                    if self.interval:
                        await trio.sleep(self.interval)
                    await self._commit_pending()
        finally:
            self._running = False

    async def _checkpoints(self) -> None:
        """After enough commits, a PASSIVE checkpoint on the checkpointer's connection and thread: it
        copies what it can of the WAL into the database without waiting for the writer or
        any reader, so the commit path never does it. A pause between two bounds its share."""
        assert self.checkpointer is not None
        log = structlog.get_logger()
        while True:
            await self._checkpoint_due.wait()
            self._checkpoint_due = trio.Event()
            try:
                await self.checkpointer.run(_passive_checkpoint)
            except Exception as exc:  # the writer's own fallback checkpoint still bounds the WAL
                self.checkpoint_failures += 1
                if self.checkpoint_failures == 1 or self.checkpoint_failures % 1000 == 0:
                    log.warning(
                        "store.checkpoint_failed",
                        path=self.path,
                        error=str(exc),
                        failures=self.checkpoint_failures,
                    )
            else:
                self.checkpoints += 1
            await trio.sleep(self.checkpoint_pause)

    async def _commit_pending(self) -> None:
        batch = self._batch
        if not batch:
            return
        self._batch = WriteBatch()
        remote = self.remote
        frame = remote.encode(batch) if remote is not None else None
        if frame is not None:
            await self._commit_remote(batch, frame)
            return
        if remote is not None:
            self.local_batches += 1  # an op that does not travel (a closure): committed here
        await self._commit_here(batch)

    async def _commit_here(self, batch: WriteBatch) -> None:
        """Commit ``batch`` on this process's connection, in a thread."""
        self._writing.append(batch)
        ran = partial(trio.lowlevel.current_trio_token().run_sync_soon, batch.ran.set)
        try:
            await trio.to_thread.run_sync(
                commit_batch, self.conn, batch, ran, limiter=self._limiter
            )
        except Exception as exc:  # disk full, I/O error: every waiter of this batch hears it
            self._finished(batch, exc)
        except BaseException:
            # Cancelled before the thread started: nothing was written, nobody may hear "durable".
            self._finished(batch, RuntimeError("cancelled before it was written"), count=False)
            raise
        else:
            self._finished(batch, None)

    async def _commit_remote(self, batch: WriteBatch, frame: bytes) -> None:
        """Commit ``batch`` in the writer process, and keep the process busy: while one batch
        is in flight the next pending one is sent too, so the process starts on it the moment
        the first is durable instead of waiting for this event loop's turn to answer
        (measured: a quarter of the process's time went waiting so). At most two are in
        flight; the process takes them in order, each its own transaction, so a batch that
        fails does not touch the next. A batch is sent behind another only once the process
        has run every function of that other one (``remote.readable``): one it could not
        read comes back before anything was sent behind it, and commits here in its turn.
        Like the thread's, a batch sent is seen through (cancelled or not); the loop ends
        when nothing is in flight."""
        remote = self.remote
        readable = remote.readable
        chain = self._writing
        chain.append(batch)
        late: list[WriteBatch] = []
        with trio.CancelScope(shield=True):
            try:
                await remote.send(frame)
                while chain:
                    head = chain[0]
                    kind, detail = await remote.receive()
                    if kind == "ran":
                        for op, (result, error) in zip(head.ops, detail, strict=True):
                            op[2], op[3] = result, error
                        head.ran.set()
                        readable.update(op[0] for op in head.ops)
                    elif kind == "done":
                        remote.batches += 1
                        self._finished(head, None)
                    elif kind == "unreadable":  # nothing written; it commits here
                        remote.unreadable += 1
                        self.local_batches += 1
                        chain.pop(0)
                        if chain:  # one was sent behind it (an argument the process
                            # could not read, its functions known): that one commits first
                            structlog.get_logger().warning(
                                "store.batch_committed_late", path=self.path, error=str(detail)
                            )
                            late.append(head)
                        else:
                            await self._commit_here(head)
                    else:  # "failed": that batch as a whole
                        self._finished(head, detail)
                    upcoming = self._batch
                    if (
                        len(chain) == 1
                        and upcoming
                        and not self.interval  # group_commit_interval: gather, then send
                        and all(op[0] in readable for op in chain[0].ops)
                    ):
                        following = remote.encode(upcoming)
                        if following is not None:  # (a closure waits for its turn here)
                            self._batch = WriteBatch()
                            chain.append(upcoming)
                            await remote.send(following)
                for head in late:
                    await self._commit_here(head)
            except WriterProcessDied as exc:
                # the batches in flight may or may not have committed: stop rather than guess
                structlog.get_logger().critical("store.writer_process_died", error=str(exc))
                while chain:
                    self._finished(chain[0], exc)
                raise

    def _finished(
        self, batch: WriteBatch, error: BaseException | None, *, count: bool = True
    ) -> None:
        """Account for a batch written (``error`` None) or failed, and wake its waiters.
        ``count`` False: it was never written (cancelled before it started)."""
        writing = self._writing
        for i, b in enumerate(writing):
            if b is batch:
                del writing[i]
                break
        if error is None:
            if self.failing is not None:
                structlog.get_logger().warning(
                    "store.write_recovered", path=self.path, failed_batches=self.failed_batches
                )
                self.failing = None
            self.commits += 1
            rows = sum(len(r) for r in batch.appends.values())
            self.rows_written += rows
            self.operations += len(batch.ops)
            since = self._since_checkpoint
            since[0] += 1
            since[1] += rows + len(batch.ops)
            if since[0] >= self.checkpoint_commits or since[1] >= self.checkpoint_rows:
                since[0] = since[1] = 0
                self._checkpoint_due.set()
        else:
            batch.error = error
            if count:
                self.failed_batches += 1
            if count and not isinstance(error, WriterProcessDied):
                if self.failing is None:
                    structlog.get_logger().error(
                        "store.write_failed",
                        path=self.path,
                        error=str(error),
                        what="state database",
                    )
                self.failing = str(error)
        batch.ran.set()
        batch.done.set()

    async def aclose(self) -> None:
        """Commit what is pending, then close both connections."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(10):
                await self._commit_pending()
            await trio.to_thread.run_sync(self.conn.close, limiter=self._limiter)
            if self.reader.conn is not self.conn:
                await self.reader.aclose()
            if self.checkpointer is not None:
                await self.checkpointer.aclose()


def _passive_checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(busy, WAL frames, frames copied into the database) of one PASSIVE checkpoint."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return (int(row[0]), int(row[1]), int(row[2]))


@contextlib.asynccontextmanager
async def open_state_writer(
    path: Path | str,
    *,
    synchronous: str = "full",
    interval: float = 0.0,
    stall_limit: float = 30.0,
    process: bool = False,
) -> AsyncIterator[StateWriter]:
    """Open the state database's writer (and a read connection) and run its commit loop.

    ``process``: group commits run in a writer process of their own
    (:mod:`gateway.writer_process`); the connection opened here serves the batches that
    cannot travel there and schema set-up.
    """

    def connect() -> list[sqlite3.Connection]:
        if str(path) == ":memory:":
            return [open_sqlite(path, synchronous=synchronous)]
        conns = [open_writer_connection(path, synchronous)]
        try:
            conns.append(open_sqlite(path, synchronous=synchronous))  # reads
            conns.append(open_sqlite(path, synchronous=synchronous))  # checkpoints
            conns[2].execute("PRAGMA wal_autocheckpoint=0")
            conns[2].execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        except BaseException:
            for conn in conns:
                conn.close()
            raise
        return conns

    conns = await trio.to_thread.run_sync(connect)
    conn = conns[0]
    reader = SqliteWorker(conns[1]) if len(conns) > 1 else None
    checkpointer = SqliteWorker(conns[2]) if len(conns) > 2 else None
    remote = None
    if process and str(path) != ":memory:":
        from gateway.writer_process import RemoteWriter

        remote = RemoteWriter(str(path), synchronous)
    writer = StateWriter(
        conn,
        path,
        reader=reader,
        checkpointer=checkpointer,
        interval=interval,
        stall_limit=stall_limit,
        remote=remote,
    )
    try:
        if remote is not None:
            await remote.start()
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            try:
                yield writer
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await writer.aclose()
        if remote is not None:
            await remote.aclose()
