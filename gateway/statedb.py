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

A state database written before the mark existed is refused like any other unmarked file.
After checking it is the right file, an operator adopts it once, with the daemon stopped::

    python -m gateway.statedb adopt /var/lib/gateway/gateway.sqlite

which marks it only if it is an SQLite file with no other application id and with at least
one of the gateway's own tables (:data:`GATEWAY_TABLES`).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from gateway.errors import StoreError

#: "GWY1" as a big-endian 32-bit integer.
APPLICATION_ID = 0x47575931
SCHEMA_VERSION = 1
#: Tables the gateway creates; ``adopt`` requires at least one of them.
GATEWAY_TABLES = frozenset(
    {"contact_ledger", "contact_list_entries", "outbox_entries", "campaigns", "campaign_audit"}
)


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

    def refuse(why: str) -> StoreError:
        return StoreError(
            f"refusing to start on {path}: {why}; it is not a gateway state database, and "
            "starting would mean deciding with no do-not-disturb lists and no contact history. "
            "Restore the database from a backup, or move the file away to start with an empty "
            "state (a database of a gatewayd from before this mark: python -m gateway.statedb "
            "adopt PATH)"
        )

    if size == 0:
        raise refuse("the file is empty (0 bytes)")
    try:
        conn = sqlite3.connect(str(path))  # read only by use: a WAL database may need its -shm
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = None
            if application_id == APPLICATION_ID:
                row = conn.execute("SELECT max(version) FROM gateway_schema").fetchone()
                version = row[0] if row else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise refuse(f"it cannot be read as SQLite ({exc})") from exc
    if application_id != APPLICATION_ID:
        raise refuse(f"no gateway mark (application_id {application_id:#x})")
    if not isinstance(version, int) or version < 1:
        raise refuse("the gateway_schema version is missing")
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


def adopt_state_database(path: Path | str) -> str:
    """Mark an unmarked database written by an earlier gatewayd; returns what was done.

    Raises StoreError when the file is not one (empty, not SQLite, another application's,
    none of the gateway's tables).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise StoreError(f"{path} is empty (0 bytes): nothing to adopt")
        conn = sqlite3.connect(str(path), isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id == APPLICATION_ID:
            return f"{path} already carries the gateway mark"
        if application_id != 0:
            raise StoreError(f"{path} belongs to another application (id {application_id:#x})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables & GATEWAY_TABLES:
            raise StoreError(f"{path} has none of the gateway's tables: not adopted")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("CREATE TABLE IF NOT EXISTS gateway_schema (version INTEGER NOT NULL)")
        conn.execute("DELETE FROM gateway_schema")
        conn.execute("INSERT INTO gateway_schema VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot adopt {path}: {exc}") from exc
    finally:
        conn.close()
    return f"{path} adopted as a gateway state database (schema version {SCHEMA_VERSION})"


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.statedb adopt PATH``: see the module docstring."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "adopt":
        print(
            "usage: python -m gateway.statedb adopt PATH (with gatewayd stopped)", file=sys.stderr
        )
        return 2
    try:
        print(adopt_state_database(args[1]))
    except StoreError as exc:
        print(f"gateway.statedb: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
