"""The state database's mark of ownership: refuse a file that is not ours, fail closed.

The state database holds the do-not-disturb lists, the contact history and the outbox. If
the gateway started on a database that is not its own (a 0-byte file left by a full disk or
a bad restore, another program's SQLite file, a file of a newer schema), it would run with
no lists and no history: every blacklisted subscriber contactable, every cap reset. So a
database the gateway creates carries a mark:

- ``PRAGMA application_id`` = :data:`APPLICATION_ID` (in the SQLite header, bytes 68-71), and
- a table ``gateway_schema(version)`` holding :data:`SCHEMA_VERSION`.

:func:`claim_state_database` is called by :func:`gateway.store.open_sqlite` before it opens
the file. An absent file is created with the mark (atomically: written under a temporary name
and linked into place). An existing file is accepted only with the mark and a version this
code knows; anything else, a 0-byte file included, raises
:class:`~gateway.errors.StoreError` naming the path, and the daemon does not start.
``:memory:`` databases (tests, tools) are not checked.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gateway.errors import StoreError

#: "GWY1" as a big-endian 32-bit integer.
APPLICATION_ID = 0x47575931
SCHEMA_VERSION = 1


def claim_state_database(path: Path | str) -> None:
    """Create ``path`` as a marked state database, or check that the existing one is ours.

    Raises StoreError with the path and what to do when the file is not ours.
    """
    if str(path) == ":memory:":
        return
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _create(path)
        return
    except OSError as exc:
        raise StoreError(f"cannot read the state database {path}: {exc.strerror or exc}") from exc
    refuse = (
        f"refusing to start on {path}: {{}}; it is not a gateway state database, and starting "
        "would mean deciding with no do-not-disturb lists and no contact history. Restore "
        "the database from a backup, or move the file away to start with an empty state"
    )
    if size == 0:
        raise StoreError(refuse.format("the file is empty (0 bytes)"))
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = None
            if application_id == APPLICATION_ID:
                row = conn.execute("SELECT max(version) FROM gateway_schema").fetchone()
                version = row[0] if row else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(refuse.format(f"it cannot be read as SQLite ({exc})")) from exc
    if application_id != APPLICATION_ID:
        raise StoreError(refuse.format(f"no gateway mark (application_id {application_id:#x})"))
    if not isinstance(version, int) or version < 1:
        raise StoreError(refuse.format("the gateway_schema version is missing"))
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"refusing to start on {path}: its schema version {version} is newer than this "
            f"gatewayd knows ({SCHEMA_VERSION}); run the version that wrote it"
        )


def _create(path: Path) -> None:
    """A new, marked, empty database at ``path``; never replaces a file that appeared meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        temporary.unlink(missing_ok=True)
        conn = sqlite3.connect(str(temporary), isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("CREATE TABLE gateway_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO gateway_schema VALUES (?)", (SCHEMA_VERSION,))
        finally:
            conn.close()
        _fsync(temporary)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another opener created it first: checked like any existing file
        _fsync(path.parent)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot create the state database {path}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    if path.exists():
        claim_state_database(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
