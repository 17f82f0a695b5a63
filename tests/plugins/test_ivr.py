"""The IVR channel over TCP against the fake AMI and event-socket servers, on the real SQLite
contact control and outbox, with Trio's MockClock driving call timers, retries and hours."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from adapters.ami.client import AmiLoginError
from adapters.esl.client import EslLoginError

from gateway.errors import ConfigError
from gateway.model import EventKind
from gateway.testing import FakeClock
from plugins.ivr.config import parse_ivr_config
from tests.plugins.ivr_harness import local_epoch, local_time, running_ivr, slow_autojump_clock

BACKENDS = pytest.mark.parametrize("backend", ["ami", "esl"])
A, B, C = "8613800000001", "8613800000002", "8613800000003"


@pytest.fixture
def ivr_clock() -> trio.testing.MockClock:
    """Trio's clock for these tests (pytest-trio uses a Clock fixture as the run's clock)."""
    return slow_autojump_clock()


def clock_at(at: str = "10:00", day: str = "2026-03-02") -> FakeClock:
    return FakeClock(epoch=local_epoch(day, at), follow_trio=True)


@BACKENDS
async def test_key_press_is_an_acceptance_through_the_hook(backend, tmp_path, ivr_clock):
    """Answered, key 1 pressed: submitted then delivered, the acceptance hook fired once, the
    ledger has allowed, committed and accepted."""
    clock = clock_at()
    async with running_ivr(tmp_path, backend, clock=clock) as h:
        h.pbx.script(A, ring=2, digits="31", digit_delay=1, talk=4)
        await h.send(A)
        await h.wait_final("offer-" + A)
        assert h.observed.states("offer-" + A) == ["submitted", "delivered"]
        (acc,) = h.observed.acceptances
        assert (acc.contact_id, acc.campaign_id, acc.msisdn, acc.channel, acc.answer) == (
            "offer-" + A, "offer", A, "ivr", "1",
        )  # fmt: skip
        events = await h.ledger_events("offer-" + A)
        assert events[:2] == ["allowed", "committed"] and "accepted" in events
        (call,) = h.pbx.calls.values()
        assert call.variables.get("GW_PROMPT") == "press 1" or backend == "ami"
        assert h.channel.stats["answered"] == 1 and h.channel.stats["accepted"] == 1


@BACKENDS
async def test_answered_without_the_key_is_delivered_without_acceptance(
    backend, tmp_path, ivr_clock
):
    """A key that is not an accept key: delivered, no acceptance."""
    async with running_ivr(tmp_path, backend, clock=clock_at()) as h:
        h.pbx.script(A, digits="9")
        await h.send(A)
        await h.wait_final("offer-" + A)
        assert h.observed.final() == {"offer-" + A: "delivered"}
        assert h.observed.acceptances == []


@BACKENDS
async def test_login_failure_places_no_call_and_keeps_the_contacts(backend, tmp_path, ivr_clock):
    """A refused login: the channel does not start, no call is placed, the contact stays queued."""
    async with running_ivr(tmp_path, backend, clock=clock_at(), ivr={"secret": "wrong"},
                           start=False) as h:  # fmt: skip
        await h.send(A)
        refused = []
        try:
            await h.channel.run()
        except* (AmiLoginError, EslLoginError) as group:
            refused.extend(group.exceptions)
        assert len(refused) == 1 and "refused" in str(refused[0])
        assert h.pbx.calls == {} and h.server.login_failures == 1
        assert (await h.gateway.outbox.show("offer-" + A))["state"] == "queued"
