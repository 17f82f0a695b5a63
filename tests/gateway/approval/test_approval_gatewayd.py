"""With a real gatewayd process: 'gatewayctl approvals ... --as' over the control socket, and
approval state kept across kill -9."""

from __future__ import annotations

import json

from tests.fakes.daemon_process import run_ctl
from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file


def ctl(config, *args):
    result = run_ctl("--config", str(config), "--json", *args)
    return result.returncode, (json.loads(result.stdout) if result.stdout else None), result.stderr


def test_gatewayctl_approvals_and_kill9(gateway_config, gatewayd, short_tmp):
    """A signature given with gatewayctl survives kill -9; the campaign stays pending until the
    chain completes after the restart; a disabled or missing --as is refused with exit 1."""
    full = write_full_file(short_tmp / "4a.json")
    campaigns = short_tmp / "campaigns"
    campaigns.mkdir()
    (campaigns / "c1.toml").write_text(
        'id = "c1"\nname = "county offer"\nowner = "author"\nchannels = ["sms"]\nkind = "batch"\n'
        '[content.sms]\ntext = "hello"\n'
    )
    config = gateway_config(
        STAFF_TOML.format(full_file=full)
        + f'[approval]\nrequired = true\ntick = "0.1s"\n[campaigns]\ndirectory = "{campaigns}"\n'
    )
    proc = gatewayd(config)
    proc.wait_ready()
    proc.wait_for_event("approval.opened")
    code, data, _ = ctl(config, "approvals", "pending", "--as", "admin")
    assert code == 0
    (pending,) = data["pending"]
    assert pending["approvers"] == ["city1", "city2"]
    code, _, err = ctl(config, "approvals", "approve", pending["id"])
    assert code == 1 and "--as ACCOUNT" in err
    code, data, _ = ctl(config, "approvals", "approve", pending["id"], "--as", "city1")
    assert code == 0 and data["step"] == 1
    proc.kill()  # SIGKILL: no shutdown, no flush

    proc = gatewayd(config)
    proc.wait_ready()
    code, data, _ = ctl(config, "approvals", "show", pending["id"], "--as", "admin")
    assert (data["state"], data["step"], data["signs"][0]["actor"]) == ("pending", 1, "city1")
    code, data, _ = ctl(config, "campaigns", "show", "c1")
    assert data["state"] == "pending_approval"
    code, data, _ = ctl(
        config,
        *("approvals", "confirm", pending["id"], "--count", "0"),
        *("--start-date", "-", "--end-date", "-", "--as", "chan"),
    )
    assert code == 0 and data["state"] == "approved"
    code, data, _ = ctl(config, "campaigns", "show", "c1")
    assert data["state"] in ("approved", "running")
