"""The SubmitReq timeout in virtual time: Trio's MockClock moves past the 30 s timeout while
the fake MMSC sits on the request for ten minutes, over real loopback HTTP."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest

from gateway.content import Content
from gateway.model import ContactRequest
from gateway.testing.mmsc import MmscAnswer, open_fake_mmsc
from plugins.mms_mm7.channel import MmsChannel
from plugins.mms_mm7.config import parse_mms_config


@pytest.fixture
def clock(mock_clock):
    """Jumps only after 50 ms of real idleness, so loopback I/O in flight is never overtaken."""
    mock_clock.autojump_threshold = 0.05
    return mock_clock


async def test_submit_times_out_in_virtual_time(clock):
    """No SubmitRsp within timeout: the POST gives up at 30 s of Trio time, counted as a timeout."""
    async with open_fake_mmsc(default=MmscAnswer(delay=600)) as mmsc:
        config = parse_mms_config(
            {"url": mmsc.url, "username": "vasp", "password": "secret", "timeout": "30s"}
        )
        gateway = SimpleNamespace(config=SimpleNamespace(sections={}, path=None))
        channel = MmsChannel(gateway, config)
        message = SimpleNamespace(
            contact_id="t1",
            msisdn="8613800000001",
            request=ContactRequest(
                contact_id="t1",
                msisdn="8613800000001",
                campaign_id="c",
                channel="mms",
                content={"text": "hi"},
            ),
        )
        mm, _size = channel.composer.compose(Content(text="hi"))
        started, wall = clock.current_time(), time.monotonic()
        async with httpx.AsyncClient() as client:
            answer = await channel._post(client, message, (mm, None))
        assert answer == "no answer from the MMSC in 30.0s"
        assert 30 <= clock.current_time() - started < 31
        assert time.monotonic() - wall < 10  # virtual: the 30 s were not waited for
        assert len(mmsc.submits) == 1 and channel.statistics()["timeouts"] == 1
