"""[plugins.sms_smpp] parsing: defaults, strictness with named keys, SMPP limits, routing rules."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from plugins.sms_smpp.config import parse_sms_config, relative_validity


def test_defaults_and_durations():
    """A minimal SMSC gets documented defaults; durations accept strings."""
    cfg = parse_sms_config(
        {"smsc": [{"system_id": "gw", "validity": "2h", "request_timeout": "5s"}]}
    )
    (smsc,) = cfg.smsc
    assert (smsc.name, smsc.port, smsc.window, smsc.bind_mode, smsc.long_message) == (
        "smsc0",
        2775,
        10,
        "transceiver",
        "udh8",
    )
    assert smsc.validity == 7200 and smsc.request_timeout == 5
    assert cfg.channel == "sms" and not cfg.embedded_simulator


def test_every_problem_is_named():
    """Unknown keys, bad choices and SMPP limits are reported together with dotted keys."""
    with pytest.raises(ConfigError) as info:
        parse_sms_config(
            {
                "smsc": [
                    {
                        "system_id": "x" * 16,
                        "password": "toolongpw",
                        "windw": 5,
                        "long_message": "udh32",
                        "routes": ["86-138"],
                    }
                ],
                "prefetsh": 1,
            }
        )
    text = str(info.value)
    for key in (
        "smsc[0].system_id",
        "smsc[0].password",
        "smsc[0].windw",
        "smsc[0].long_message",
        "smsc[0].routes",
        "plugins.sms_smpp.prefetsh",
    ):
        assert key in text, key
    assert "did you mean 'window'" in text


def test_missing_system_id_and_duplicate_names():
    """system_id is required; SMSC names must be unique; only one default route."""
    with pytest.raises(ConfigError, match=r"smsc\[0\]\.system_id: is required"):
        parse_sms_config({"smsc": [{}]})
    with pytest.raises(ConfigError, match="names must be unique"):
        parse_sms_config(
            {
                "smsc": [
                    {"name": "a", "system_id": "x", "routes": ["1"]},
                    {"name": "a", "system_id": "y", "routes": ["2"]},
                ]
            }
        )
    with pytest.raises(ConfigError, match="at most one SMSC without routes"):
        parse_sms_config(
            {"smsc": [{"name": "a", "system_id": "x"}, {"name": "b", "system_id": "y"}]}
        )


def test_password_not_in_repr():
    """The password never appears in the config's repr (and so never in logs)."""
    cfg = parse_sms_config({"smsc": [{"system_id": "gw", "password": "s3cr3t"}]})
    assert "s3cr3t" not in repr(cfg)


def test_relative_validity_format():
    """Validity periods use the SMPP relative form YYMMDDhhmmss000R."""
    assert relative_validity(86400 + 3600 + 61) == "000001010101000R"
