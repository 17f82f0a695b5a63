"""State files are not world-readable, whatever the umask gatewayd starts with."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_dir_and_files_are_private_whatever_the_umask(
    umask, short_tmp, gateway_config, gatewayd
):
    """A real gatewayd creates its state directory 0750 and every state file (database, WAL, SHM, lock) 0640."""
    config = gateway_config()
    old = os.umask(umask)
    try:
        proc = gatewayd(config)  # the child inherits the umask at fork
    finally:
        os.umask(old)
    proc.wait_ready()
    state = short_tmp / "state"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.rglob("*") if not p.is_socket()}
    assert {"gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm", "gatewayd.lock"} <= set(
        modes
    ), modes
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert {name: oct(m) for name, m in modes.items() if m != 0o640} == {}
