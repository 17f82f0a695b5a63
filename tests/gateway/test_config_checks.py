"""What ``gatewayd --check-config`` must refuse so that a start does not fail later."""

from __future__ import annotations

import pytest

from gateway.config import load_config
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
