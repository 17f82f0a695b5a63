"""The [contact] section is parsed strictly, with errors naming the key."""

from __future__ import annotations

import pytest

from gateway.contact.config import parse_contact_config
from gateway.errors import ConfigError


def test_full_section_parses() -> None:
    """Every documented key is read into typed values."""
    cfg = parse_contact_config(
        {
            "backend": "redis",
            "redis": "10.0.0.5:6380",
            "timezone": "Europe/Berlin",
            "reservation_timeout": "5m",
            "refund_on": ["expired"],
            "passive_channels": ["crm"],
            "group_commit_interval": "2ms",
            "contact_hours": {"sms": "08:00-21:00", "ivr": "09:00-20:00"},
            "caps": {
                "sms_day": {"scope": "channel", "channel": "sms", "window": "day", "limit": 1},
                "any_7d": {"scope": "all_channels", "window": "7d", "limit": 3},
            },
            "cooldowns": {"telemarketing": "60d"},
            "exemptions": {"service": ["greylist", "vip_protected"]},
        }
    )
    assert cfg.backend == "redis" and (cfg.redis_host, cfg.redis_port) == ("10.0.0.5", 6380)
    assert cfg.reservation_timeout == 300 and cfg.refund_on == {"expired"}
    assert cfg.contact_hours["sms"].start == 8 * 3600 and cfg.contact_hours["ivr"].end == 20 * 3600
    caps = {c.name: c for c in cfg.caps}
    assert caps["sms_day"].reason == "cap.channel.day"
    assert caps["any_7d"].window == "rolling" and caps["any_7d"].seconds == 7 * 86400
    assert cfg.cooldowns == {"telemarketing": 60 * 86400}
    assert cfg.exemptions["service"] == {"greylist", "vip_protected"}


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"exemptions": {"service": ["blacklist"]}}, "contact.exemptions.service"),
        ({"exemptions": {"service": ["global_opt_out"]}}, "contact.exemptions.service"),
        ({"contact_hours": {"sms": "8-21"}}, "contact.contact_hours.sms"),
        ({"caps": {"x": {"scope": "galaxy", "limit": 1}}}, "contact.caps.x.scope"),
        ({"caps": {"x": {"scope": "channel", "limit": 1, "windw": "day"}}}, "contact.caps.x.windw"),
        (
            {"caps": {"x": {"scope": "channel", "limit": 1, "window": "fortnight"}}},
            "contact.caps.x.window",
        ),
        ({"timezone": "Mars/Olympus"}, "contact.timezone"),
        ({"backend": "postgres"}, "contact.backend"),
        ({"refund_on": ["lost"]}, "contact.refund_on"),
        ({"reservaton_timeout": 5}, "contact.reservaton_timeout"),
    ],
)
def test_bad_values_name_the_key(table: dict, key: str) -> None:
    """Each mistake is reported with its dotted key (exemption from blacklist is refused)."""
    with pytest.raises(ConfigError) as info:
        parse_contact_config(table)
    assert key in [p.key for p in info.value.problems]


def test_example_gateway_toml_section_parses() -> None:
    """The documented [contact] section of etc/gateway.toml is valid."""
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "etc" / "gateway.toml"
    cfg = parse_contact_config(tomllib.loads(path.read_text())["contact"])
    assert {c.name for c in cfg.caps} >= {"sms_daily", "all_channels_weekly"}
    assert cfg.horizon < float("inf")
