"""dnd.edit and msisdn.read_clear enforced on the contact commands of a real gatewayd, over
the control socket with gatewayctl, every use in the audit table; without [staff] nothing
is checked (the single-operator install: the socket's file mode is the access control)."""

from __future__ import annotations

import json

from tests.fakes.daemon_process import run_ctl
from tests.gateway.staff.staff_data import ACCOUNTS, STAFF_TOML, account, write_full_file

NUMBER = "13500000001"
E164 = "8613500000001"
MASKED = "861****01"


def ctl(config, *args):
    result = run_ctl("--config", str(config), "--json", *args)
    data = json.loads(result.stdout) if result.stdout and result.returncode == 0 else None
    return result.returncode, data, result.stderr


def test_dnd_edit_and_clear_msisdn_need_their_permissions(gateway_config, gatewayd, short_tmp):
    """Without dnd.edit, add/remove/import are refused; why/contacts are masked unless --clear
    by an account holding msisdn.read_clear; allowed and denied uses are audited."""
    full = write_full_file(
        short_tmp / "4a.json",
        [*ACCOUNTS, account("keeper", "gd", "dnd_editor", "privacy")],
    )
    staff = STAFF_TOML.format(full_file=full).replace(
        "[staff.roles]\n",
        '[staff.roles]\ndnd_editor = ["dnd.edit"]\nprivacy = ["msisdn.read_clear"]\n',
    )
    config = gateway_config(staff)
    proc = gatewayd(config)
    proc.wait_ready()
    listing = short_tmp / "black.txt"
    listing.write_text(f"{NUMBER}\n13500000002\n")

    code, _, err = ctl(config, "dnd", "add", "blacklist", NUMBER, "--as", "helper")
    assert code == 1 and "lacks the permission dnd.edit" in err
    code, data, _ = ctl(config, "dnd", "check", NUMBER, "--as", "helper")
    assert data == []
    code, _, err = ctl(config, "dnd", "import", "blacklist", str(listing), "--as", "helper")
    assert code == 1 and "lacks the permission dnd.edit" in err
    code, data, err = ctl(config, "dnd", "import", "blacklist", str(listing), "--as", "keeper")
    assert code == 0 and data["entries"] == 2, err
    code, _, err = ctl(config, "dnd", "remove", "blacklist", NUMBER, "--as", "helper")
    assert code == 1 and "lacks the permission dnd.edit" in err
    code, data, err = ctl(config, "dnd", "remove", "blacklist", NUMBER, "--as", "keeper")
    assert code == 0 and data["removed"] is True, err
    code, data, err = ctl(config, "dnd", "add", "greylist", NUMBER, "--as", "keeper")
    assert code == 0, err

    for command in ("why", "contacts"):
        code, data, err = ctl(config, command, NUMBER, "--as", "helper")
        assert code == 0 and data["msisdn"] == MASKED and E164 not in json.dumps(data), err
        code, _, err = ctl(config, command, NUMBER, "--clear", "--as", "helper")
        assert code == 1 and "lacks the permission msisdn.read_clear" in err
        code, data, err = ctl(config, command, NUMBER, "--clear", "--as", "keeper")
        assert code == 0 and data["msisdn"] == E164, err

    code, data, _ = ctl(config, "staff", "audit", "blacklist", "--as", "admin")
    imports = [(r["actor"], r["action"], r["outcome"]) for r in data["audit"]]
    assert ("helper", "dnd.import", "denied") in imports
    assert imports.count(("keeper", "dnd.import", "ok")) == 2  # begin and commit
    code, data, _ = ctl(config, "staff", "audit", MASKED, "--as", "admin")
    reads = {(r["actor"], r["action"], r["outcome"]) for r in data["audit"]}
    assert {("helper", "why", "denied"), ("keeper", "why", "ok")} <= reads
    assert {("helper", "contacts", "denied"), ("keeper", "contacts", "ok")} <= reads
    code, data, _ = ctl(config, "staff", "audit", f"blacklist:{MASKED}", "--as", "admin")
    edits = {(r["actor"], r["action"], r["outcome"]) for r in data["audit"]}
    assert {("helper", "dnd.add", "denied"), ("keeper", "dnd.remove", "ok")} <= edits


def test_without_staff_section_nothing_is_checked(gateway_config, gatewayd, short_tmp):
    """No [staff]: dnd add needs no account and why shows the number in clear, as before."""
    config = gateway_config()
    proc = gatewayd(config)
    proc.wait_ready()
    code, _, err = ctl(config, "dnd", "add", "blacklist", NUMBER)
    assert code == 0, err
    code, data, err = ctl(config, "why", NUMBER)
    assert code == 0 and data["msisdn"] == E164 and data["lists"][0]["category"] == "blacklist"
