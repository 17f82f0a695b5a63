"""SMPP behaviour an operator will hit, through the SMS channel and the simulator over real TCP:
late receipts (timeout, query_sm, unknown, settled later), per-destination ESME_RMSGQFUL,
separate transmitter and receiver binds, MO logged masked and handed on."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from gateway.logging import configure_logging
from tests.plugins.sms_smpp_harness import (
    request,
    running_channel,
    running_simulator,
    smsc_table,
    wait_for,
)


def _states(h, contact_id: str) -> list[str]:
    return [d.state.value for d in h.observed.deliveries if d.contact_id == contact_id]


async def test_withheld_receipt_becomes_unknown_after_receipt_timeout(tmp_path):
    """A receipt that never comes: after receipt_timeout the message is reported unknown, once."""
    async with (
        running_simulator(receipt_delay=None) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, receipt_timeout="0.3s")]) as h,
    ):
        await h.send_allowed(*[request(f"w{i}", f"86138000000{i:02d}") for i in range(5)])
        await wait_for(lambda: len(h.observed.final()) == 5)
        assert set(h.observed.final().values()) == {"unknown"}
        assert _states(h, "w0") == ["submitted", "unknown"]
        assert h.channel.stats["receipt_timeouts"] == 5
        assert sim.stats["query_sm"] == 0
        assert h.channel.snapshot()["awaiting_receipts"] == 0
        assert (await h.outbox.show("w0"))["state"] == "unknown"


async def test_late_receipt_queried_with_query_sm(tmp_path):
    """With query_sm, an overdue message takes the state the SMSC reports (delivered or not)."""
    async with running_simulator(receipt_delay=None, undeliverable_prefixes=("86139",)) as sim:
        table = smsc_table(sim.port, receipt_timeout="0.3s", query_sm=True)
        async with running_channel(tmp_path, [table]) as h:
            await h.send_allowed(*[request("q1", "8613800000001"), request("q2", "8613900000002")])
            await wait_for(lambda: len(h.observed.final()) == 2)
            assert h.observed.final() == {"q1": "delivered", "q2": "undeliverable"}
            assert sim.stats["query_sm"] == 2 and h.channel.stats["receipts_queried"] == 2
            assert h.channel.stats["receipt_timeouts"] == 0


async def test_smsc_without_query_sm_gives_unknown(tmp_path):
    """An SMSC that answers query_sm with generic_nack: the overdue message is reported unknown."""
    async with running_simulator(receipt_delay=None, query_sm=False) as sim:
        table = smsc_table(sim.port, receipt_timeout="0.3s", query_sm=True)
        async with running_channel(tmp_path, [table]) as h:
            await h.send_allowed(request("n1"))
            await wait_for(lambda: "n1" in h.observed.final())
            assert h.observed.final() == {"n1": "unknown"}
            assert h.channel.stats["receipt_timeouts"] == 1
            assert all(b.state == "bound" for b in h.channel.accounts["main"].binds)


async def test_receipt_after_unknown_settles_the_message(tmp_path):
    """A receipt arriving after the message was reported unknown settles it as delivered."""
    async with (
        running_simulator(receipt_delay=1.0) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, receipt_timeout="0.2s")]) as h,
    ):
        await h.send_allowed(request("late"))
        await wait_for(lambda: "unknown" in _states(h, "late"))
        await wait_for(lambda: h.observed.final().get("late") == "delivered")
        assert _states(h, "late") == ["submitted", "unknown", "delivered"]
        assert h.channel.stats["receipts_after_unknown"] == 1
        assert (await h.outbox.show("late"))["state"] == "delivered"


async def test_queue_full_for_one_destination_is_retried_bounded_and_rejected(tmp_path):
    """ESME_RMSGQFUL for one destination: bounded retries then rejected; other numbers delivered."""
    async with running_simulator(receipt_delay=0.02, queue_full={"8613900000001": -1}) as sim:
        table = smsc_table(sim.port, queue_full_retries=2, queue_full_delay="0.2s")
        async with running_channel(tmp_path, [table]) as h:
            await h.send_allowed(
                *[request("full", "8613900000001")]
                + [request(f"ok{i}", f"86138000000{i:02d}") for i in range(20)]
            )
            await wait_for(lambda: len(h.observed.final()) == 21)
            final = h.observed.final()
            assert final.pop("full") == "rejected"
            assert set(final.values()) == {"delivered"}
            assert sim.stats["queue_full"] == 3  # one try, two retries
            error = [d.error for d in h.observed.deliveries if d.contact_id == "full"][-1]
            assert "ESME_RMSGQFUL" in error and "2 retries" in error
            assert h.channel.accounts["main"].paused_until == 0.0  # the account never paused
            smsc = h.channel.snapshot()["smsc"]["main"]
            assert smsc["queue_full_answers"] == 3 and smsc["rate_now"] == smsc["rate"]


async def test_separate_transmitter_and_receiver_binds(tmp_path):
    """bind_mode transmitter and receiver: submits on the one, receipts and MO on the other."""
    tx = smsc_table(0, name="tx", bind_mode="transmitter")
    rx = smsc_table(0, name="rx", bind_mode="receiver")
    async with running_simulator(receipt_delay=0.05) as sim:
        tx["port"] = rx["port"] = sim.port
        async with running_channel(tmp_path, [tx, rx]) as h:
            await wait_for(lambda: len(sim.bound()) == 2)
            assert sorted(sim.bound()) == [("gateway", "receiver"), ("gateway", "transmitter")]
            await h.send_allowed(*[request(f"t{i}", f"86138000000{i:02d}") for i in range(10)])
            await wait_for(lambda: len(h.observed.final()) == 10)
            assert set(h.observed.final().values()) == {"delivered"}
            assert {s.connection for s in sim.submitted} == {
                c.id for c in sim._connections.values() if c.mode == "transmitter"
            }
            await sim.send_mo("8613912345678", "10086", "Y")
            await wait_for(lambda: h.observed.mo)
            assert h.observed.mo[0].text == "Y"
            assert h.channel.accounts["rx"].binds[0].mode == "receiver"
            assert h.channel.route("8613800000000").name == "tx"


async def test_mo_is_logged_masked_and_handed_on(tmp_path):
    """An MO message is logged with the sender masked (text not logged) and reaches gateway_mo_message."""
    stream = io.StringIO()
    configure_logging("info", fmt="json", stream=stream)
    try:
        async with (
            running_simulator() as sim,
            running_channel(tmp_path, [smsc_table(sim.port)]) as h,
        ):
            await wait_for(lambda: sim.bound())
            await sim.send_mo("8613912345678", "1008601", "Y secret reply")
            await wait_for(lambda: h.observed.mo)
    finally:
        structlog.reset_defaults()
    assert h.observed.mo[0].msisdn == "8613912345678"
    assert h.observed.mo[0].text == "Y secret reply"
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.startswith("{")]
    mo = [x for x in lines if x["event"] == "sms.mo_received"]
    assert len(mo) == 1 and mo[0]["chars"] == len("Y secret reply") and mo[0]["parts"] == 1
    assert "8613912345678" not in stream.getvalue() and "secret reply" not in stream.getvalue()
    assert mo[0]["msisdn"] != "8613912345678" and "*" in mo[0]["msisdn"]


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"bind_mode": "receiver", "routes": ["86138"]}, "routes"),
        ({"query_sm": True}, "query_sm"),
        ({"bind_mode": "both"}, "bind_mode"),
    ],
)
def test_bind_mode_and_receipt_settings_are_checked(table, error):
    """Routes on a receiver, query_sm without receipt_timeout and unknown bind modes are refused."""
    from gateway.errors import ConfigError
    from plugins.sms_smpp.config import parse_sms_config

    with pytest.raises(ConfigError, match=error):
        parse_sms_config({"smsc": [{"name": "a", "system_id": "gw", **table}]})


async def test_receipt_watch_memory_follows_the_messages_awaited(tmp_path):
    """With prompt receipts and a long receipt_timeout, the watch holds about what is awaited,
    not one deadline per message sent during the timeout."""
    async with (
        running_simulator(receipt_delay=0.0) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, receipt_timeout="1h", window=50)]) as h,
    ):
        await h.send_allowed(*[request(f"m{i}", f"8613{i:09d}") for i in range(12_000)])
        await wait_for(lambda: len(h.observed.final()) == 12_000, limit=300)  # a hang guard
        assert set(h.observed.final().values()) == {"delivered"}
        assert len(h.channel._awaited) == 0
        assert len(h.channel._deadlines) <= 10_000
