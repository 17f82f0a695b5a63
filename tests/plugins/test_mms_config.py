"""[plugins.mms_mm7]: profiles and overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from plugins.mms_mm7.config import parse_mms_config


def test_profile_sets_limits_and_keys_override_them():
    """A profile gives size and pixel limits; max_message_bytes / max_image_size override."""
    config = parse_mms_config({"url": "http://mmsc/mm7", "profile": "image-basic"})
    assert (config.max_message_bytes, config.max_image_size) == (30 * 1024, (160, 120))
    config = parse_mms_config(
        {"profile": "megapixel", "max_message_bytes": 50_000, "max_image_size": "320x240"}
    )
    assert (config.max_message_bytes, config.max_image_size) == (50_000, (320, 240))
    assert parse_mms_config({}).url == ""  # no MMSC: the channel is not registered


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": "ftp://mmsc"}, "plugins.mms_mm7.url: must be an http"),
        ({"release": "REL-7"}, "plugins.mms_mm7.release: must be one of REL-5, REL-6"),
        ({"max_image_size": "640"}, "plugins.mms_mm7.max_image_size: must be WIDTHxHEIGHT"),
        ({"username": "u"}, "plugins.mms_mm7.password: is required with username"),
        ({"inbound_username": "u"}, "plugins.mms_mm7.inbound_password: is required"),
        ({"inbound_path": "mm7"}, "plugins.mms_mm7.inbound_path: must start with /"),
        ({"profile": "huge"}, "plugins.mms_mm7.profile: must be one of"),
        ({"charged_party": "Me"}, "plugins.mms_mm7.charged_party: must be one of"),
        ({"vasid": "x"}, "plugins.mms_mm7.vasid: unknown key"),
    ],
)
def test_bad_values_name_the_key(table, message):
    """Each bad value is refused with its dotted key and the reason."""
    with pytest.raises(ConfigError, match=message):
        parse_mms_config(table)
