"""``gatewayctl profiles reload`` against a real gatewayd: a refused file is an error, exit 1."""

from __future__ import annotations

import os

from tests.fakes.daemon_process import run_ctl


def test_profiles_reload_of_a_bad_file_exits_non_zero_with_the_reason(
    short_tmp, gateway_config, gatewayd
):
    """A bad profile file makes `profiles reload` exit 1 naming file and line; the old index stays."""
    profiles = short_tmp / "profiles.csv"
    profiles.write_text("msisdn,brand\n8613800000001,gotone\n8613800000002,mzone\n")
    config = gateway_config(f'\n[profiles]\nfile = "{profiles}"\n')
    proc = gatewayd(config)
    proc.wait_ready()
    socket = ["--socket", str(proc.socket_path)]
    good = run_ctl(*socket, "profiles", "reload")
    assert good.returncode == 0, good.stderr

    profiles.write_text("msisdn,brand\n8613800000001,gotone\n8613800000002\n")
    os.utime(profiles, ns=(1, 1))  # a changed mtime whatever the clock's resolution
    bad = run_ctl(*socket, "profiles", "reload")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert f"{profiles}: line 3: expected 2 fields, got 1" in bad.stderr
    status = run_ctl(*socket, "--json", "profiles", "status")
    assert status.returncode == 0 and '"subscribers": 2' in status.stdout
