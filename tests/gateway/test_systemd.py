"""The systemd unit and snippets are accepted by systemd's own tools (skipped without them)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "gateway.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


@needs_analyze
def test_unit_verifies(tmp_path):
    """systemd-analyze verify accepts the unit (ExecStart pointed at this venv's gatewayd)."""
    gatewayd = Path(sys.executable).parent / "gatewayd"
    if not gatewayd.exists():
        pytest.skip("gatewayd console script not installed next to this interpreter")
    copy = tmp_path / "gateway.service"
    copy.write_text(UNIT.read_text().replace("/opt/gateway/.venv/bin/gatewayd", str(gatewayd)))
    result = subprocess.run(
        [ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_analyze
def test_security_exposure_is_ok():
    """systemd-analyze security --offline rates the unit 2.5 or lower."""
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(
        r"Overall exposure level for gateway\.service: (\d+\.\d+)", result.stdout + result.stderr
    )
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5


def test_unit_has_the_required_settings():
    """Type=notify with watchdog, reload by SIGHUP, dedicated user, state/runtime dirs, no capabilities."""
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=gateway",
        "StateDirectory=gateway",
        "RuntimeDirectory=gateway",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
        "SystemCallFilter=@system-service",
        "UMask=0027",
    ):
        assert line in text, line
    stop = int(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1))
    assert stop > 20  # above the default drain_deadline


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed"
)
def test_sysusers_snippet_creates_the_user(tmp_path):
    """systemd-sysusers --root creates the gateway user from the snippet."""
    (tmp_path / "etc").mkdir()
    snippet = ROOT / "systemd" / "gateway.sysusers.conf"
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(snippet)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^gateway:x:\d+:\d+:.*:/var/lib/gateway:", (tmp_path / "etc" / "passwd").read_text(), re.M
    )


# The unit sets MemoryDenyWriteExecute=yes. Linux >= 6.3 offers the same rule per process
# (prctl PR_SET_MDWE, inherited across execve), so the daemon can be checked without systemd.
_MDWE_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_gatewayd_runs_under_memory_deny_write_execute(gateway_config, gatewayd, short_tmp):
    """Under the MemoryDenyWriteExecute rule gatewayd starts, answers (worker threads too) and stops with 0."""
    gatewayd_path = Path(sys.executable).parent / "gatewayd"
    if not gatewayd_path.exists():
        pytest.skip("gatewayd console script not installed next to this interpreter")
    probe = subprocess.run([sys.executable, "-c", _MDWE_WRAPPER, "/bin/true"], timeout=30)
    if probe.returncode == 77:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    wrapper = short_tmp / "mdwe.py"
    wrapper.write_text(_MDWE_WRAPPER)
    config = gateway_config()
    proc = gatewayd(
        config, args=[str(wrapper), str(gatewayd_path), "--config", str(config)], interpreter=True
    )
    status = proc.wait_ready()
    assert status["state"] == "running"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert not [r for r in proc.records() if r["level"] in ("error", "critical")]
