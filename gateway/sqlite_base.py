"""The state database's SQLite layer, without the event loop: opening a connection, and the
one transaction of a group commit (:func:`commit_batch`).

:mod:`gateway.store` builds the writer on it; the writer process (:mod:`gateway.writer_child`)
imports this module alone, so it starts without trio.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.errors import StoreError
from gateway.statedb import claim_state_database

#: The writer's own checkpoint (``wal_autocheckpoint``), in pages: reached only when the
#: background checkpointer cannot keep up (SQLite's default, 1,000, put a checkpoint inside
#: the commit path every ~4 MB written).
FALLBACK_CHECKPOINT_PAGES = 50_000
#: A background checkpoint after this many commits or written rows (and operations),
#: whichever comes first.
CHECKPOINT_COMMITS = 64
CHECKPOINT_ROWS = 20_000
#: The WAL file is cut back to this size after a checkpoint restarts it.
WAL_SIZE_LIMIT = 64 * 1024 * 1024
#: The writer connection's page cache, in KiB (SQLite's default is 2 MB). The random-keyed
#: indexes (contact ids) of a database of millions of entries did not fit: under load the
#: writer read ~15 KB from the file per message (3.5 read calls); with this, ~0.4 KB.
WRITER_CACHE_KIB = 64 * 1024

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


def open_sqlite(
    path: Path | str, *, synchronous: str = "full", busy_timeout_ms: int = 10_000
) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` in WAL mode.

    The connection may be used from any thread but by one at a time (see SqliteWorker).
    Raises StoreError with the path and the reason when it cannot be opened.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
    path = Path(path)
    claim_state_database(path)  # refuses a file that is not ours (gateway/statedb.py)
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


#: SQLite result codes that mean the database (not one operation) failed.
_DATABASE_FAILURES = frozenset(
    (
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOTADB,
    )
)


def database_failed(exc: Exception) -> bool:
    if isinstance(exc, OSError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _DATABASE_FAILURES


def commit_batch(
    conn: sqlite3.Connection, batch: Any, ran: Callable[[], Any] | None = None
) -> None:
    """One transaction: the appends, then the ops. An op that raises fails alone (savepoints).

    ``ran`` is called (thread-safe, without waiting) once the ops have run, before COMMIT.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in batch.appends.items():
            conn.executemany(sql, rows)
        failed = False
        for op in batch.ops:
            try:
                op[2] = op[0](conn, *op[1])
            except Exception as exc:
                if database_failed(exc):
                    raise  # the database itself (full, I/O): the whole batch
                failed = True
                break
        if failed:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            for sql, rows in batch.appends.items():
                conn.executemany(sql, rows)
            for op in batch.ops:
                op[2] = op[3] = None
                conn.execute("SAVEPOINT op")
                try:
                    op[2] = op[0](conn, *op[1])
                except Exception as exc:
                    if database_failed(exc):
                        raise
                    conn.execute("ROLLBACK TO op")
                    op[3] = exc
                conn.execute("RELEASE op")
        if ran is not None:
            ran()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


#: Values bound per ``IN (...)`` list (well under SQLite's 32,766 parameters).
IN_CHUNK = 500


def rows_in_chunks(
    conn: sqlite3.Connection, sql: str, values: Sequence[Any], before: Sequence[Any] = ()
) -> list[tuple]:
    """The rows of ``sql`` run once per chunk of ``values``: ``{marks}`` in ``sql`` becomes
    the chunk's ``?`` list, bound after the ``before`` parameters (one statement per 500
    values instead of one per value)."""
    out: list[tuple] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        out.extend(conn.execute(sql.format(marks=marks), (*before, *chunk)).fetchall())
    return out


def open_writer_connection(path: Path | str, synchronous: str) -> sqlite3.Connection:
    """The writer's connection: no checkpoint inside commits but the fallback, a WAL bound."""
    conn = open_sqlite(path, synchronous=synchronous)
    try:
        conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
    except BaseException:
        conn.close()
        raise
    return conn
