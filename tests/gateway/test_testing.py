"""gateway.testing, the helpers we ship to plugin authors, does what it promises."""

from __future__ import annotations

import socket
import time

import pytest
import trio

from gateway.model import ContactDecision, ContactRequest, Outcome
from gateway.outbox import OutboxConfig, open_outbox
from gateway.testing import FakeClock, open_smsc_simulator, reserved_port, wait_until


async def test_fake_clock_moves_with_the_mock_clock(autojump_clock):
    """Under autojump a day passes at once, in wall time and in Trio time alike."""
    clock = FakeClock(follow_trio=True)
    start = clock()
    await trio.sleep(86_400)
    assert clock() - start == pytest.approx(86_400)
    clock.advance(60)
    assert clock() - start == pytest.approx(86_460)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_outbox_expiry_passes_without_waiting(autojump_clock, tmp_path):
    """A message nobody takes is expired by the real outbox after [outbox] expiry: a day of
    wall time in a fraction of a second."""
    clock = FakeClock(follow_trio=True)
    config = OutboxConfig(expiry=3600.0, scheduler_interval=60.0)
    began = time.monotonic()
    async with open_outbox(
        tmp_path / "o.sqlite", config, clock=clock, synchronous="normal", run_scheduler=False
    ) as ob:
        request = ContactRequest(
            contact_id="x1", msisdn="8613800000001", campaign_id="c", channel="mms"
        )
        await ob.enqueue(
            ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=clock())
        )
        assert (await ob.show("x1"))["state"] == "queued"
        # The scheduler's passes are made here, so that they happen at known times: run as
        # a task under autojump, its passes fall behind whenever a worker thread is busy.
        await trio.sleep(1800)
        await ob.tick()
        assert (await ob.show("x1"))["state"] == "queued"
        await trio.sleep(1900)
        await ob.tick()
        assert (await ob.show("x1"))["state"] == "expired"
    assert time.monotonic() - began < 10


async def test_wait_until_returns_the_value_or_times_out(autojump_clock):
    """wait_until returns the condition's value, accepts async conditions, and has a deadline."""
    box = []

    async def later():
        await trio.sleep(5)
        box.append("ready")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await wait_until(lambda: box, within=10) == ["ready"]

    async def never():
        return False

    with pytest.raises(trio.TooSlowError):
        await wait_until(never, within=30)


async def test_smsc_simulator_handle_listens_on_loopback():
    """The handle names a loopback port where the simulator accepts TCP connections."""
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        assert smsc.host == "127.0.0.1" and smsc.port > 0
        assert smsc.credentials == {"gateway": "secret"} and smsc.config.receipt_delay is None
        stream = await trio.open_tcp_stream(smsc.host, smsc.port)
        await stream.aclose()
        assert smsc.texts() == []


async def test_reserved_port_is_refused_then_served_and_given_to_nobody_else():
    """A reserved port refuses connections (a peer that is down), is not handed out by
    ``bind(port 0)`` meanwhile, and a server binds it inside the block with no gap."""
    with reserved_port() as port:
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        with socket.socket() as other, pytest.raises(OSError):  # held: EADDRINUSE
            other.bind(("127.0.0.1", port))
        handed_out = set()
        for _ in range(500):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                handed_out.add(s.getsockname()[1])
        assert port not in handed_out
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        async with listeners[0], await trio.open_tcp_stream("127.0.0.1", port) as stream:
            server = await listeners[0].accept()
            async with server:
                await stream.send_all(b"up")
                assert await server.receive_some(2) == b"up"
