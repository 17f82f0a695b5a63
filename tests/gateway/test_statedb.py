"""The state database's mark: a file that is not ours is refused, only absence initialises."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.errors import StoreError
from gateway.statedb import APPLICATION_ID, SCHEMA_VERSION, claim_state_database
from gateway.store import open_sqlite
from tests.fakes.daemon_process import run_ctl


def test_absent_file_is_created_with_the_mark(tmp_path):
    """A missing state database is created marked (application_id and version table)."""
    path = tmp_path / "state" / "gateway.sqlite"
    conn = open_sqlite(path)
    conn.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("SELECT version FROM gateway_schema").fetchall() == [(SCHEMA_VERSION,)]
    raw.close()
    open_sqlite(path).close()  # and accepted when opened again
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


def test_zero_byte_file_is_refused(tmp_path):
    """A 0-byte gateway.sqlite is refused with a message naming the path, and left as is."""
    path = tmp_path / "gateway.sqlite"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"gateway\.sqlite: the file is empty \(0 bytes\)"):
        open_sqlite(path)
    assert path.read_bytes() == b""


def test_foreign_sqlite_and_garbage_are_refused(tmp_path):
    """Another program's SQLite file, an unmarked old one and a non-SQLite file are refused."""
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE contact_list_entries (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no gateway mark"):
        claim_state_database(foreign)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot be read as SQLite"):
        claim_state_database(garbage)


def test_newer_schema_is_refused(tmp_path):
    """A database marked with a newer schema version is refused (run the version that wrote it)."""
    path = tmp_path / "gateway.sqlite"
    open_sqlite(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE gateway_schema SET version = ?", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        open_sqlite(path)


def test_gatewayd_refuses_a_zero_byte_state_database(gateway_config, gatewayd, short_tmp):
    """gatewayd with a 0-byte gateway.sqlite exits 1 naming the file, and does not touch it."""
    state = short_tmp / "state"
    state.mkdir()
    (state / "gateway.sqlite").write_bytes(b"")
    proc = gatewayd(gateway_config())
    assert proc.wait(timeout=30) == 1
    output = proc.stderr + "\n".join(proc.lines)
    assert f"refusing to start on {state / 'gateway.sqlite'}" in output
    assert (state / "gateway.sqlite").stat().st_size == 0
    assert (
        not (short_tmp / "control.sock").exists()
        or run_ctl("--socket", str(short_tmp / "control.sock"), "status").returncode == 2
    )


def test_gatewayd_initialises_an_empty_state_dir_and_restarts_on_it(
    gateway_config, gatewayd, short_tmp
):
    """An absent state directory is initialised; the daemon starts again on its own database."""
    config = gateway_config()
    for _ in range(2):
        proc = gatewayd(config)
        proc.wait_ready()
        proc.signal(15)
        assert proc.wait(timeout=30) == 0
    raw = sqlite3.connect(short_tmp / "state" / "gateway.sqlite")
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    raw.close()


def test_adopt_marks_an_old_gateway_database_only(tmp_path):
    """adopt marks a pre-mark gateway database; empty and foreign files stay refused."""
    from gateway.statedb import main

    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE contact_list_entries (x)")
    conn.execute("INSERT INTO contact_list_entries VALUES (1)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no gateway mark"):
        open_sqlite(old)
    assert main(["adopt", str(old)]) == 0
    open_sqlite(old).close()
    assert sqlite3.connect(old).execute("SELECT x FROM contact_list_entries").fetchall() == [(1,)]
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE photos (x)")
    conn.commit()
    conn.close()
    assert main(["adopt", str(empty)]) == 1 and main(["adopt", str(other)]) == 1
    with pytest.raises(StoreError):
        open_sqlite(other)
