"""The embedded state store: one SQLite database (WAL) under the state directory.

Each core component (contact ledger, outbox, campaigns) opens its own connection to the same
file with :func:`open_sqlite` and talks to it only through :class:`SqliteWorker`, which runs
the blocking sqlite3 calls in a worker thread, one at a time per connection, never in the
event loop. SQLite serialises writers across connections (``busy_timeout`` waits for the
lock); WAL lets readers go on while one writes.

Durability: ``synchronous=FULL`` (the default) makes a committed transaction survive power
loss; ``NORMAL`` survives a crash of the process (kill -9) but not of the machine. Components
batch many records into one transaction (group commit) so that neither costs an fsync per
record.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from gateway.errors import StoreError

T = TypeVar("T")

SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")
#: State files (database, WAL, SHM) and the state directory we create: nothing for others.
STATE_FILE_MODE = 0o640
STATE_DIR_MODE = 0o750


def make_state_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; the directory created gets 0750 whatever the umask."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, STATE_DIR_MODE)


def secure_state_file(path: Path, *, created: bool) -> None:
    """Make a state database 0640 when we created it, else take away anything beyond 0640.

    Called before WAL mode is set: SQLite gives a new ``-wal`` and ``-shm`` file the mode of
    the database (and fchmods them to it), so they follow whatever the umask. Leftover ones
    from an earlier run are tightened too, where we may (a file of another owner that we can
    use through its group is left as it is).
    """
    if created:
        os.chmod(path, STATE_FILE_MODE)
    for existing in (
        *(() if created else (path,)),
        path.with_name(path.name + "-wal"),
        path.with_name(path.name + "-shm"),
    ):
        try:
            mode = stat.S_IMODE(os.stat(existing).st_mode)
            if mode & ~STATE_FILE_MODE:
                os.chmod(existing, mode & STATE_FILE_MODE)
        except (FileNotFoundError, PermissionError):
            pass


def open_sqlite(path: Path | str, *, synchronous: str = "full", busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` in WAL mode.

    The connection may be used from any thread but by one at a time (see SqliteWorker).
    Raises StoreError with the path and the reason when it cannot be opened.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
    path = Path(path)
    try:
        on_disk = str(path) != ":memory:"
        if on_disk:
            make_state_dir(path.parent)
        existed = path.exists()
        conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_ms / 1000
        )
        if on_disk:
            secure_state_file(path, created=not existed)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open state database {path}: {exc}") from exc
    return conn


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
        return await trio.to_thread.run_sync(_in_transaction, self.conn, fn, args, limiter=self._limiter)

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
