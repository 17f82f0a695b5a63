"""State files are not world-readable, whatever the umask gatewayd starts with."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "etc/demo/sample.pcap"


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_dir_and_files_are_private_whatever_the_umask(
    umask, short_tmp, gateway_config, gatewayd
):
    """A real gatewayd creates its state directories 0750 and every state file (database, WAL, SHM, lock, progress) 0640."""
    spool = short_tmp / "spool"
    spool.mkdir()
    shutil.copy(DEMO, spool / "sample.pcap")
    config = gateway_config(
        f"""
        [plugins.signaling_pcap]
        directory = "{spool}"
        settle = 0
        poll_interval = "50ms"
        home_plmns = ["46000"]
        """
    )
    old = os.umask(umask)
    try:
        proc = gatewayd(config)  # the child inherits the umask at fork
    finally:
        os.umask(old)
    proc.wait_ready()
    proc.wait_for_event("signaling.file_done", timeout=30)
    state = short_tmp / "state"
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.rglob("*") if p.is_file()}
    dirs = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in [state, *state.rglob("*")] if p.is_dir()
    }
    assert {"gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm", "gatewayd.lock"} <= set(
        files
    ), files
    assert {"state", "signaling"} <= set(dirs), dirs
    assert {name: oct(m) for name, m in files.items() if m != 0o640} == {}
    assert {name: oct(m) for name, m in dirs.items() if m != 0o750} == {}


def test_existing_world_readable_database_is_tightened(tmp_path):
    """A database left 0666 by an earlier version loses what is beyond 0640, its WAL and SHM too; 0600 stays."""
    from gateway.store import open_sqlite

    loose, strict = tmp_path / "loose.sqlite", tmp_path / "strict.sqlite"
    for path, mode in ((loose, 0o666), (strict, 0o600)):
        open_sqlite(path).close()  # a marked state database, as an earlier run left it
        os.chmod(path, mode)
        for extra in tmp_path.glob(path.name + "-*"):
            os.chmod(extra, mode)
        conn = open_sqlite(path)
        conn.execute("CREATE TABLE t (a)")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob(path.name + "*")}
        conn.close()
        expected = 0o640 if mode == 0o666 else 0o600
        assert modes == dict.fromkeys([path.name, path.name + "-wal", path.name + "-shm"], expected)
