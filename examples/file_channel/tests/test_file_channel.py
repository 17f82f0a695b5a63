"""The file channel's own tests, as a plugin in its own repository writes them.

Run with ``pytest`` after ``pip install -e .`` (the entry point registers the plugin) in an
environment where the gateway and pytest-trio are installed.
"""

import json

import pytest

from gateway.model import ContactRequest
from gateway.testing import wait_until


@pytest.mark.trio
async def test_a_contact_becomes_a_line_and_is_reported_delivered(open_test_gateway, tmp_path):
    """Decided by the real contact control, queued, written, then submitted and delivered."""
    out = tmp_path / "out.jsonl"
    async with open_test_gateway(f'[plugins.file_channel]\npath = "{out}"\n') as gw:
        request = ContactRequest(
            contact_id="k1",
            msisdn="8613800000009",
            campaign_id="c",
            channel="file",
            content={"text": "hello"},
        )
        decision = await gw.gateway.contact_control.decide(request)
        assert await gw.gateway.outbox.enqueue(decision)
        await wait_until(lambda: out.exists() and out.read_text())
        assert json.loads(out.read_text())["text"] == "hello"

        async def delivered():
            return (await gw.gateway.outbox.show("k1"))["state"] == "delivered"

        await wait_until(delivered)  # the report follows the write


def test_config_refuses_unknown_keys():
    """A typo in [plugins.file_channel] is an error naming the key."""
    from gateway_file_channel import parse_config

    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"plugins\.file_channel\.pth"):
        parse_config({"pth": "x"}, "plugins.file_channel")
