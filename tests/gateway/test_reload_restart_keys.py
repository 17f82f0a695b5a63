"""``gatewayctl reload`` against a real gatewayd: changed keys that need a restart are named."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.config import GatewayConfig, HttpConfig
from gateway.contracts import SectionSpec
from gateway.daemon import keep_restart_keys
from tests.fakes.daemon_process import run_ctl

RESTART_KEYS = [
    "gateway.state_dir",
    "gateway.control_socket",
    "http.listen",
    "logging.format",
    "contact.backend",
    "campaigns.state_ttl",
]


def edit(path: Path, short_tmp: Path) -> None:
    """Change keys reload cannot apply, and one it can (the log level)."""
    text = path.read_text()
    text = text.replace(str(short_tmp / "state"), str(short_tmp / "state2"))
    text = text.replace(str(short_tmp / "control.sock"), str(short_tmp / "other.sock"))
    text = text.replace('level = "info"', 'level = "debug"')
    text = text.replace('format = "json"', 'format = "console"')
    text += '\n[http]\nlisten = "127.0.0.1:0"\n'
    text += '\n[contact]\nbackend = "redis"\n'
    text += '\n[campaigns]\nstate_ttl = "2d"\n'
    path.write_text(text)


def test_reload_names_the_keys_that_need_a_restart(gateway_config, gatewayd, short_tmp):
    """Reply and log list each changed restart-only key; the running values stay in force."""
    config = gateway_config()
    proc = gatewayd(config)
    proc.wait_ready()
    original = config.read_text()
    edit(config, short_tmp)
    socket = ["--socket", str(proc.socket_path)]

    result = run_ctl(*socket, "--json", "reload")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["reloaded"] is True
    assert sorted(data["restart_required"]) == sorted(RESTART_KEYS)
    (logged,) = proc.wait_for_event("config.restart_required")
    assert sorted(logged["keys"]) == sorted(RESTART_KEYS)

    text = run_ctl(*socket, "reload")
    assert text.returncode == 0, text.stderr
    assert "these changes need a restart: " in text.stdout
    assert all(key in text.stdout for key in RESTART_KEYS)  # listed again until the restart

    # Still on the old socket and state directory, still JSON logs; the level was applied.
    assert not (short_tmp / "other.sock").exists() and not (short_tmp / "state2").exists()
    assert proc.request("status")["data"]["reloads"] == 2
    assert json.loads(proc.lines[-1])  # the renderer did not switch to console

    config.write_text(original)
    back = json.loads(run_ctl(*socket, "--json", "reload").stdout)
    assert back["restart_required"] == []


def test_keep_restart_keys_keeps_running_values_and_applies_the_rest(tmp_path):
    """The merged config holds the running value of each restart key and the new value of others."""
    running = GatewayConfig(http=HttpConfig(listen="", idle_timeout=30.0))
    new = GatewayConfig(http=HttpConfig(listen="127.0.0.1:8080", idle_timeout=30.0))
    changed, merged = keep_restart_keys(running, new, [])
    assert changed == ["http.listen"] and merged.http.listen == ""
    spec = SectionSpec(name="x", parse=lambda t, k: t, top_level=True, restart_keys=("a",))
    old_x = HttpConfig(listen="a", max_body_bytes=1)
    new_x = HttpConfig(listen="a", max_body_bytes=2)
    changed, merged = keep_restart_keys(
        GatewayConfig(sections={"x": old_x}), GatewayConfig(sections={"x": new_x}), [spec]
    )
    assert changed == [] and merged.sections["x"].max_body_bytes == 2  # not a restart key
