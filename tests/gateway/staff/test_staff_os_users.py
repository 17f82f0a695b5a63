"""gatewayctl acts as the staff account of its OS user: a real gatewayd, the real control
socket, the peer's credentials from the kernel (SO_PEERCRED). The test runs as root; the
unprivileged client is a child that drops to ``nobody`` before it connects."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap

import pytest

from tests.fakes.daemon_process import run_ctl
from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")

#: gatewayctl's client (``gateway.ctl.request``) in a child that gives up root before it
#: connects: imports first (the interpreter lives under /root, unreadable by nobody).
AS_NOBODY = textwrap.dedent(
    """
    import json, os, sys
    from gateway import ctl
    os.setgroups([])
    os.setgid(int(sys.argv[2]))
    os.setuid(int(sys.argv[1]))
    reply = ctl.request(sys.argv[3], sys.argv[4], sys.argv[5:], timeout=20)
    print(json.dumps(reply))
    """
)


def as_nobody(socket_path, cmd, *args):
    """Send one command as the OS user nobody; (ok, reply data, error)."""
    entry = pwd.getpwnam("nobody")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            AS_NOBODY,
            str(entry.pw_uid),
            str(entry.pw_gid),
            str(socket_path),
            cmd,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    return (0 if reply["ok"] else 1), reply.get("data"), reply.get("error", "")


def as_root(config, *args):
    result = run_ctl("--config", str(config), "--json", *args)
    data = json.loads(result.stdout) if result.stdout and result.returncode == 0 else None
    return result.returncode, data, result.stderr


def staff_config(gateway_config, short_tmp, acting: str):
    full = write_full_file(short_tmp / "4a.json")
    staff = STAFF_TOML.format(full_file=full).replace("[staff.roles]", acting + "[staff.roles]")
    return gateway_config(staff, gateway_extra="control_socket_mode = 0o666\n")


def test_os_user_maps_to_account_and_as_is_for_root(gateway_config, gatewayd, short_tmp):
    """nobody acts as its mapped account without --as and is refused --as another (audited);
    root may use --as; an unmapped root without --as is told to name an account."""
    os.chmod(short_tmp, 0o755)  # nobody must reach the socket inside it
    config = staff_config(gateway_config, short_tmp, 'os_users = { nobody = "admin" }\n')
    proc = gatewayd(config)
    proc.wait_ready()
    sock = short_tmp / "control.sock"

    code, data, err = as_nobody(sock, "staff", "list")
    assert code == 0, err
    assert "city1" in {a["id"] for a in data["accounts"]}
    code, _, err = as_nobody(sock, "staff", "list", "--as", "city1")
    assert code == 1 and "may not act as another staff account" in err
    code, _, err = as_nobody(sock, "staff", "list", "--as", "admin")  # its own account
    assert code == 0, err

    code, _, err = as_root(config, "staff", "list")
    assert code == 1 and "'root' is not mapped" in err and "--as ACCOUNT" in err
    code, data, err = as_root(config, "staff", "list", "--as", "admin")
    assert code == 0, err
    code, _, err = as_root(config, "staff", "list", "--as", "city1")  # allowed to name it...
    assert code == 1 and "lacks the permission staff.read" in err  # ...and then checked

    code, data, _ = as_root(config, "staff", "audit", "city1", "--as", "admin")
    refused = [r for r in data["audit"] if r["outcome"] == "denied"]
    assert refused[0]["actor"] == "os:nobody" and "--as refused" in refused[0]["detail"]
    code, data, _ = as_root(config, "staff", "audit", "4a", "--as", "admin")
    assert any(r["actor"] == "city1" and r["outcome"] == "denied" for r in data["audit"])


def test_admin_group_may_impersonate_and_unmapped_user_is_refused(
    gateway_config, gatewayd, short_tmp
):
    """A member of [staff] admin_group may use --as; the same user unmapped and without --as
    is refused."""
    os.chmod(short_tmp, 0o755)
    group = __import__("grp").getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    config = staff_config(gateway_config, short_tmp, f'admin_group = "{group}"\n')
    proc = gatewayd(config)
    proc.wait_ready()
    sock = short_tmp / "control.sock"
    code, _, err = as_nobody(sock, "staff", "list")
    assert code == 1 and "'nobody' is not mapped" in err
    code, data, err = as_nobody(sock, "approvals", "pending", "--as", "admin")
    assert code == 0, err
    code, data, err = as_nobody(sock, "staff", "list", "--as", "admin")
    assert code == 0 and data["accounts"], err


def test_os_users_must_name_accounts():
    """[staff] os_users maps names to account strings; anything else is a config error."""
    from gateway.errors import ConfigError
    from gateway.staff.plugin import parse_staff_config

    rules = parse_staff_config({"os_users": {"alice": "city1"}, "admin_group": "wheel"}).acting
    assert (rules.os_users, rules.admin_group) == ({"alice": "city1"}, "wheel")
    with pytest.raises(ConfigError, match=r"staff\.os_users\.bob: must be a string"):
        parse_staff_config({"os_users": {"bob": 3}})
    with pytest.raises(ConfigError, match=r"staff\.os_users\.eve: must name a staff account"):
        parse_staff_config({"os_users": {"eve": " "}})
