"""What ``gatewayd --check-config`` must refuse so that a start does not fail later."""

from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.config_reader import TableReader
from gateway.errors import ConfigError
from gateway.plugin_manager import make_plugin_manager


def problems_of(path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, make_plugin_manager())
    return [str(p) for p in exc.value.problems]


def check(gatewayd, config):
    proc = gatewayd(config, args=["--check-config", str(config)])
    return proc.wait(), proc.stderr


def test_campaigns_timezone_is_validated(gateway_config, gatewayd):
    """An unknown [campaigns] timezone fails --check-config with file, key and reason."""
    config = gateway_config('\n[campaigns]\ntimezone = "Asia/Beijing"\n')
    code, stderr = check(gatewayd, config)
    assert code == 1
    assert f"{config}: campaigns.timezone: unknown time zone 'Asia/Beijing'" in stderr
    ok = gateway_config('\n[campaigns]\ntimezone = "Asia/Urumqi"\n', name="ok.toml")
    assert check(gatewayd, ok) == (0, "")


def test_infinite_durations_and_numbers_are_refused(gateway_config, gatewayd):
    """inf (or a literal that overflows to it) is refused for durations and numbers, with key and reason."""
    config = gateway_config(
        '\n[http]\nidle_timeout = inf\n[campaigns]\nstate_ttl = 1e999\ntick = "9'
        + "9" * 400
        + 's"\n',
        gateway_extra="drain_deadline = -inf\n",
    )
    code, stderr = check(gatewayd, config)
    assert code == 1
    for key in ("http.idle_timeout", "campaigns.state_ttl", "campaigns.tick"):
        assert f"{config}: {key}: must be a finite number" in stderr, (key, stderr)
    assert f"{config}: gateway.drain_deadline: must be a finite number" in stderr
    r = TableReader({"x": float("inf"), "y": float("-inf")}, "t")
    assert r.float("x", 1.0) == 1.0 and r.float("y", 2.0) == 2.0 and not r.ok
    assert [str(p) for p in r._problems] == [
        "t.x: must be a finite number, got inf",
        "t.y: must be a finite number, got -inf",
    ]


def test_control_socket_path_too_long_for_af_unix(short_tmp, gatewayd):
    """A control socket path longer than AF_UNIX allows (107 bytes + NUL) fails --check-config."""
    long_dir = short_tmp / ("d" * 60) / ("e" * 60)
    config = short_tmp / "gateway.toml"
    config.write_text(
        f'[gateway]\nstate_dir = "{short_tmp / "state"}"\n'
        f'control_socket = "{long_dir / "control.sock"}"\n'
    )
    code, stderr = check(gatewayd, config)
    assert code == 1
    assert f"{config}: gateway.control_socket: " in stderr and "too long" in stderr
    relative = short_tmp / "rel.toml"  # relative paths count once resolved
    relative.write_text('[gateway]\ncontrol_socket = "' + "x" * 100 + '.sock"\n')
    assert "gateway.control_socket: " in check(gatewayd, relative)[1]
    fits = short_tmp / "fits.toml"
    fits.write_text(
        f'[gateway]\nstate_dir = "{short_tmp / "state"}"\ncontrol_socket = "{short_tmp / "c.sock"}"\n'
    )
    assert check(gatewayd, fits) == (0, "")


GOOD_CAMPAIGN = """id = "{id}"
name = "n"
channels = ["sms"]
[content.sms]
text = "hi"
[trigger]
events = ["power_on"]
"""


def test_check_config_reads_the_files_the_config_names(short_tmp, gateway_config, gatewayd):
    """--check-config reads the areas file, every campaign file and the profile file, naming file and problem."""
    campaigns = short_tmp / "campaigns"
    campaigns.mkdir()
    (campaigns / "ok.toml").write_text(GOOD_CAMPAIGN.format(id="ok"))
    (campaigns / "gbk.toml").write_bytes(GOOD_CAMPAIGN.format(id="机场").encode("gbk"))
    (campaigns / "bad.toml").write_text("colour = 1\n" + GOOD_CAMPAIGN.format(id="bad"))
    (short_tmp / "areas.toml").write_text('[areas.airport]\ncells = ["nope"]\n')
    (short_tmp / "profiles.csv").write_text("msisdn,brand\n8613800000001\n8613800000002,a,b\n")
    config = gateway_config(
        """
        [campaigns]
        directory = "campaigns"
        areas_file = "areas.toml"
        [profiles]
        file = "profiles.csv"
        """
    )
    code, stderr = check(gatewayd, config)
    assert code == 1, stderr
    assert f"{campaigns / 'gbk.toml'}: not UTF-8 text (byte 0xbb at offset 6)" in stderr
    assert f"{campaigns / 'bad.toml'}: colour: unknown key" in stderr
    assert f"{short_tmp / 'areas.toml'}: areas.airport.cells[0]: expected a cell" in stderr
    assert (
        f"{config}: profiles.file: {short_tmp / 'profiles.csv'}: line 2: expected 2 fields, got 1"
        in stderr
    )
    assert "ok.toml" not in stderr
    assert "5 problem(s)" in stderr  # the areas file has two

    missing = gateway_config(
        '\n[campaigns]\ndirectory = "nowhere"\nareas_file = "none.toml"\n'
        '[profiles]\nfile = "none.csv"\n',
        name="missing.toml",
    )
    code, stderr = check(gatewayd, missing)
    assert code == 1
    assert f"{missing}: campaigns.directory: {short_tmp / 'nowhere'}: no such directory" in stderr
    assert f"{short_tmp / 'none.toml'}: cannot read: No such file" in stderr
    assert f"{missing}: profiles.file: {short_tmp / 'none.csv'}: cannot open" in stderr

    (campaigns / "gbk.toml").unlink()
    (campaigns / "bad.toml").unlink()
    (short_tmp / "areas.toml").write_text('[areas.airport]\ncells = ["4101-1001"]\n')
    (short_tmp / "profiles.csv").write_text("msisdn,brand\n8613800000001,a\n")
    assert check(gatewayd, config) == (0, "")
