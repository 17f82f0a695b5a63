"""Do-not-disturb through a real gatewayd and gatewayctl: number forms, empty imports, files.

The contact is made by the daemon itself: an XDR record (MSISDN in international format)
triggers a real-time campaign, and contact control must suppress it because the same
subscriber was imported into the blacklist in national format.
"""

from __future__ import annotations

import os
import time

from tests.fakes.daemon_process import run_ctl

CAMPAIGN = """\
id = "welcome"
name = "Welcome"
owner = "test"
class = "care"
priority = 50
kind = "realtime"
channels = ["sms"]
initial_state = "running"

[content.sms]
text = "hello"

[trigger]
events = ["power_on"]
"""


def _config(gateway_config, short_tmp):
    (short_tmp / "campaigns").mkdir()
    (short_tmp / "campaigns" / "welcome.toml").write_text(CAMPAIGN)
    (short_tmp / "xdr").mkdir()
    return gateway_config(
        f"""
        [contact.contact_hours]
        sms = "00:00-23:59"

        [campaigns]
        directory = "{short_tmp / "campaigns"}"

        [plugins.signaling_xdr]
        columns = ["time", "imsi", "msisdn", "event"]
        delimiter = "|"
        directory = "{short_tmp / "xdr"}"
        settle = "0s"
        poll_interval = "0.05s"
        event_codes = {{ "1" = "power_on" }}
        """
    )


def test_national_blacklist_import_suppresses_international_contact(
    gateway_config, gatewayd, short_tmp
):
    """gatewayctl imports 13500000001; an XDR event for +8613500000001 is suppressed."""
    proc = gatewayd(_config(gateway_config, short_tmp))
    proc.wait_ready()
    sock = str(short_tmp / "control.sock")
    listfile = short_tmp / "black.txt"
    listfile.write_text("# national format, as BOSS exports it\n13500000001,fraud\n")
    done = run_ctl("--socket", sock, "dnd", "import", "blacklist", str(listfile))
    assert done.returncode == 0, done.stderr
    assert "1 entries" in done.stdout
    for form in ("13500000001", "+8613500000001", "0086 135 0000 0001", "8613500000001"):
        check = run_ctl("--socket", sock, "dnd", "check", form)
        assert check.returncode == 0 and "blacklist" in check.stdout, (form, check)
    now = int(time.time())
    (short_tmp / "xdr" / "a.xdr").write_text(f"{now}|460001234567890|+86 135 0000 0001|1\n")
    deadline = time.monotonic() + 20
    why = None
    while time.monotonic() < deadline:
        why = run_ctl("--socket", sock, "why", "013500000001")
        if "SUPPRESSED" in why.stdout or "ALLOWED" in why.stdout:
            break
        time.sleep(0.2)
    assert why is not None and "SUPPRESSED (dnd.blacklist)" in why.stdout, why
    assert "ALLOWED" not in why.stdout


def test_empty_import_refused_and_list_kept(gateway_config, gatewayd, short_tmp):
    """An empty file is refused with exit 1 and the list kept; --allow-empty empties it."""
    proc = gatewayd(gateway_config())
    proc.wait_ready()
    sock = str(short_tmp / "control.sock")
    full, empty = short_tmp / "full.txt", short_tmp / "empty.txt"
    full.write_text("8613500000001\n8613500000002\n")
    empty.write_bytes(b"")
    assert run_ctl("--socket", sock, "dnd", "import", "blacklist", str(full)).returncode == 0
    refused = run_ctl("--socket", sock, "dnd", "import", "blacklist", str(empty))
    assert refused.returncode == 1 and "--allow-empty" in refused.stderr
    assert "blacklist" in run_ctl("--socket", sock, "dnd", "check", "13500000002").stdout
    emptied = run_ctl("--socket", sock, "dnd", "import", "blacklist", str(empty), "--allow-empty")
    assert emptied.returncode == 0, emptied.stderr
    assert "not on any list" in run_ctl("--socket", sock, "dnd", "check", "13500000002").stdout


def test_import_reads_the_file_in_gatewayctl_and_never_echoes_it(
    gateway_config, gatewayd, short_tmp
):
    """A file gatewayctl cannot read is refused by gatewayctl; a non-list file is not echoed."""
    proc = gatewayd(gateway_config())
    proc.wait_ready()
    sock = str(short_tmp / "control.sock")
    shadow = short_tmp / "shadow"
    shadow.write_text("root:$6$topsecrethash:19000:0:99999:7:::\n")
    result = run_ctl("--socket", sock, "dnd", "import", "blacklist", str(shadow))
    assert result.returncode == 1
    assert "line 1" in result.stderr and "topsecret" not in result.stderr + result.stdout
    assert "root" not in result.stderr
    # the daemon refuses a path outright: it never opens what a client names
    raw = proc.request("dnd", "import", "blacklist", str(shadow))
    assert not raw["ok"] and "topsecret" not in raw["error"] and "gatewayctl" in raw["error"]
    if os.geteuid() != 0:  # root reads anything: the privilege check needs a normal user
        shadow.chmod(0)
        denied = run_ctl("--socket", sock, "dnd", "import", "blacklist", str(shadow))
        assert denied.returncode == 1 and "cannot read" in denied.stderr


def test_numbers_section_sets_the_plan_of_the_daemon(gateway_config, gatewayd, short_tmp):
    """[numbers] country_code 44 makes 07700 900123 and +44 7700 900123 one listed number."""
    config = gateway_config(
        """
        [numbers]
        country_code = "44"
        mobile_length = 0
        """
    )
    proc = gatewayd(config)
    proc.wait_ready()
    sock = str(short_tmp / "control.sock")
    added = run_ctl("--socket", sock, "dnd", "add", "blacklist", "07700 900123")
    assert added.returncode == 0, added.stderr
    check = run_ctl("--socket", sock, "--json", "dnd", "check", "+44 7700 900123")
    assert check.returncode == 0 and '"blacklist"' in check.stdout
    # under this plan an 11-digit 1... number is E.164 (+1), not a Chinese mobile
    assert run_ctl("--socket", sock, "dnd", "add", "blacklist", "+1 312 555 0123").returncode == 0
    assert "blacklist" in run_ctl("--socket", sock, "dnd", "check", "13125550123").stdout
