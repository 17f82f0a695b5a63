"""SMPP binds against the simulator over loopback TCP: window, rate, throttling, keep-alive, faults."""

from __future__ import annotations

import ssl
import subprocess

import pytest
import trio

from adapters.smpp.simulator import SimulatorConfig
from tests.adapters.smpp.smpp_client_helpers import job, simulator_and_account, wait_for


async def test_window_never_exceeded_and_filled():
    """With slow answers the SMSC sees exactly `window` outstanding submit_sm, never more."""
    cfg = SimulatorConfig(receipt_delay=None, response_delay=0.02)
    async with simulator_and_account(cfg, window=8) as (sim, account, h, _):
        for i in range(300):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 300)
        assert sim.max_outstanding == 8
        assert all(j.status is None for j in h.results)


async def test_two_binds_share_the_window_per_bind():
    """Two binds of one account each keep their own window and both carry traffic."""
    cfg = SimulatorConfig(receipt_delay=None, response_delay=0.02)
    async with simulator_and_account(cfg, binds=2, window=5) as (sim, account, h, _):
        for i in range(200):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 200)
        assert sim.max_outstanding == 5
        assert all(b.submitted > 20 for b in account.binds)


async def test_rate_cap_held_over_ten_seconds(autojump_clock):
    """The account cap (200 submit_sm/s over two binds) is held within 2% over 10 s, measured at the SMSC.

    On Trio's MockClock: the bucket and the binds run on virtual time, so a loaded machine cannot
    starve the sender (the real-time version failed under load); the SMSC's count of accepted
    submit_sm is sampled every 10 ms of that time.
    """
    async with simulator_and_account(binds=2, rate=200.0, window=50) as (sim, account, _h, _):
        for i in range(2600):
            await account.submit(job(i))
        await wait_for(lambda: len(sim.submitted) > 0)
        t0 = trio.current_time()
        counts = []  # (time, submit_sm the SMSC accepted so far)
        while trio.current_time() < t0 + 10.5:
            counts.append((trio.current_time() - t0, len(sim.submitted)))
            await trio.sleep(0.01)
        at = lambda t: next(n for when, n in counts if when >= t)  # noqa: E731
        rate = (at(10.25) - at(0.25)) / 10.0  # skip the initial burst
        assert abs(rate - 200.0) / 200.0 < 0.02, rate
        assert len(sim.submitted) < 2600  # still capped: the queue outlasts the window


async def test_throttled_answers_pause_and_retry():
    """ESME_RTHROTTLED: the account pauses, the segment is retried, nothing is lost.
    (ESME_RMSGQFUL is per destination: see test_smpp_flow_control.py.)"""
    cfg = SimulatorConfig(receipt_delay=None, throttle_every=10, throttle_status=0x58)
    async with simulator_and_account(cfg, throttle_delay=0.05) as (sim, account, h, _):
        for i in range(100):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 100)
        assert all(j.status is None for j in h.results)
        assert sim.stats["throttled"] >= 10 and "smpp.throttled" in h.names()
        assert sorted(sim.texts()) == sorted(f"m{i}" for i in range(100))


async def test_simulator_rate_limit_throttles_and_client_backs_off():
    """An SMSC that throttles above 100/s still receives every message from an uncapped client."""
    cfg = SimulatorConfig(receipt_delay=None, max_rate=100)
    async with simulator_and_account(cfg, throttle_delay=0.05) as (sim, account, h, _):
        for i in range(250):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 250, limit=15)
        assert len(sim.texts()) == 250 and sim.stats["throttled"] > 0


async def test_garbage_pdu_gets_generic_nack_and_session_survives():
    """An unknown PDU from the SMSC is answered with generic_nack; the bind stays up and sends."""
    async with simulator_and_account() as (sim, account, h, _):
        await wait_for(lambda: sim.bound())
        assert await sim.inject_garbage() == 1
        await wait_for(lambda: sim.stats["generic_nack_received"] == 1)
        for i in range(10):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 10)
        assert sim.stats["connections"] == 1 and "smpp.garbage" in h.names()


async def test_enquire_link_both_ways():
    """The ESME sends enquire_link on its interval and answers the SMSC's own."""
    cfg = SimulatorConfig(receipt_delay=None, enquire_link_interval=0.05)
    async with simulator_and_account(cfg, enquire_link_interval=0.05) as (sim, _account, _h, _):
        await wait_for(
            lambda: (
                sim.stats["enquire_link_received"] >= 3
                and sim.stats["enquire_link_resp_received"] >= 3
            )
        )


async def test_unbind_on_shutdown():
    """Cancelling the binds sends unbind and waits for unbind_resp."""
    async with simulator_and_account() as (sim, _account, h, scope):
        await wait_for(lambda: sim.bound())
        scope.cancel()
        await wait_for(lambda: sim.stats["unbind_received"] == 1)
        await wait_for(lambda: "smpp.unbound" in h.names())


async def test_bind_refused_retries_with_backoff():
    """A wrong password is reported and retried with backoff; the task keeps running."""
    async with simulator_and_account(password="wrong") as (sim, account, h, _):
        await wait_for(lambda: sim.stats["bind_refused"] >= 3)
        assert "smpp.bind_failed" in h.names()
        # Polled, not sampled: a refused connection passes through "idle" while it closes.
        bind = account.binds[0]
        await wait_for(lambda: bind.state == "backoff" and bind.reconnects >= 2)


async def test_request_timeout_resends():
    """A submit_sm unanswered within request_timeout is sent again and counted as resent."""
    cfg = SimulatorConfig(receipt_delay=None, response_delay=0.6)
    async with simulator_and_account(cfg, request_timeout=0.2) as (sim, account, h, _):
        await account.submit(job(1))
        await wait_for(lambda: "smpp.submit_timeout" in h.names())
        sim.config.response_delay = 0.0  # the SMSC recovers
        await wait_for(lambda: h.results, limit=10)
        assert h.results[0].resent >= 1 and sim.stats["submit_sm"] >= 2


async def test_reconnect_requeues_unanswered():
    """Dropped connections mid-window: unanswered segments go out again after reconnecting."""
    cfg = SimulatorConfig(receipt_delay=None, drop_after_pdus=40, drop_times=3)
    async with simulator_and_account(cfg, window=16) as (sim, account, h, _):
        for i in range(300):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 300)
        assert {f"m{i}" for i in range(300)} <= set(sim.texts())
        assert sim.stats["connections"] == 4 and "smpp.requeued" in h.names()


async def test_transmitter_receiver_pair_gets_mo_on_receiver():
    """In transmitter+receiver mode, submits go on the transmitter and MO on the receiver."""
    async with simulator_and_account(modes=("transmitter", "receiver")) as (sim, account, h, _):
        await wait_for(lambda: len(sim.bound()) == 2)
        await account.submit(job(1))
        await sim.send_mo("8613900000000", "10086", "Y")
        await wait_for(lambda: h.results and h.delivered)
        assert h.delivered[0].short_message == b"Y"
        assert sorted(m for _, m in sim.bound()) == ["receiver", "transmitter"]


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(d / "key.pem"),
                "-out",
                str(d / "cert.pem"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("openssl is not available to make a test certificate")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    client = ssl.create_default_context(cafile=str(d / "cert.pem"))
    return server, client


async def test_tls_bind(tls_contexts):
    """With TLS the bind verifies the SMSC certificate and carries messages."""
    server, client = tls_contexts
    async with simulator_and_account(ssl_server=server, ssl_context=client) as (sim, account, h, _):
        for i in range(20):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 20)
        assert len(sim.texts()) == 20


def test_backoff_jitter_bounds():
    """Reconnect delays grow exponentially up to the cap, with jitter inside the bounds."""
    import random

    from adapters.smpp.transport import backoff_delays

    gen = backoff_delays(1.0, 8.0, random.Random(3))
    delays = [next(gen) for _ in range(10)]
    caps = [min(8.0, 2.0**n) for n in range(10)]
    assert all(1.0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len(set(delays)) == 10


async def test_unencodable_message_fails_alone():
    """A message smpplib cannot encode fails with ESME_RINVPARLEN; the bind carries on."""
    from adapters.smpp.transport import SubmitJob

    async with simulator_and_account() as (sim, account, h, _):
        await account.submit(
            SubmitJob(
                key="bad", segments=[{"destination_addr": 12345, "short_message": "not bytes"}]
            )
        )
        for i in range(5):
            await account.submit(job(i))
        await wait_for(lambda: len(h.results) == 6)
        bad = next(j for j in h.results if j.key == "bad")
        assert bad.status == 0xC2 and "smpp.encode_failed" in h.names()
        assert len(sim.texts()) == 5 and sim.stats["connections"] == 1
