"""The SMS channel end to end against the SMSC simulator over loopback TCP."""

from __future__ import annotations

import socket
import time

import attrs
import trio

from gateway.model import ContactDecision, Outcome
from tests.plugins.sms_smpp_harness import (
    deliver_sm,
    request,
    running_channel,
    running_simulator,
    smsc_table,
    wait_for,
)


async def test_submit_receipts_and_contact_control(tmp_path):
    """Messages reach the SMSC, receipts mark them delivered, contact control is committed and reconciled."""
    async with (
        running_simulator(receipt_delay=0.02) as sim,
        running_channel(tmp_path, [smsc_table(sim.port)]) as h,
    ):
        await h.send_allowed(
            *[request(f"c{i}", f"861380000{i:04d}", text=f"hello {i}") for i in range(50)]
        )
        await wait_for(lambda: len(h.observed.final()) == 50)
        assert set(h.observed.final().values()) == {"delivered"}
        assert sorted(sim.texts()) == sorted(f"hello {i}" for i in range(50))
        for i in range(50):  # the real contact control counted each one once
            assert await h.ledger_events(f"c{i}") == ["allowed", "committed"]
        assert [c["state"] for c in await h.control.current_contacts("8613800000007")] == [
            "committed"
        ]
        assert await h.outbox.delivery_counts("c1") == {"delivered": 50}
        assert sim.submitted[0].source_addr == "10086" and sim.submitted[
            0
        ].destination_addr.startswith("86138")


async def test_long_chinese_ucs2_reassembles_at_simulator(tmp_path):
    """A long Chinese text goes out as UCS2 segments with a UDH and reassembles at the SMSC."""
    text = "尊敬的客户，您好！" * 30  # noqa: RUF001 - Chinese punctuation on purpose
    for mode in ("udh8", "udh16", "payload"):
        async with (
            running_simulator() as sim,
            running_channel(tmp_path / mode, [smsc_table(sim.port, long_message=mode)]) as h,
        ):
            await h.send_allowed(request("long", text=text))
            await wait_for(lambda: h.observed.final().get("long") == "delivered")
            assert sim.texts() == [text]
            assert all(s.data_coding == 0x08 for s in sim.submitted)
            assert len(sim.submitted) == (1 if mode == "payload" else 5)


async def test_mo_long_message_reassembled(tmp_path):
    """A long MO message arriving in three parts is offered to plugins once, whole."""
    text = "Y " + "请帮我开通流量包" * 20
    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        await wait_for(lambda: sim.bound())
        parts = await sim.send_mo("8613912345678", "10086", text, reference=42)
        assert parts > 1
        await wait_for(lambda: h.observed.mo)
        assert [m.text for m in h.observed.mo] == [text]
        assert h.observed.mo[0].msisdn == "8613912345678"


async def test_receipts_correlate_across_reconnect_and_restart(tmp_path):
    """Receipts sent after the bind dropped, and after the channel restarted, still find their contact."""
    async with running_simulator(receipt_delay=0.5) as sim:
        async with running_channel(tmp_path, [smsc_table(sim.port)]) as h:
            await h.send_allowed(*[request(f"r{i}") for i in range(20)])
            await wait_for(lambda: len(sim.submitted) == 20)
            await wait_for(
                lambda: (
                    len([d for d in h.observed.deliveries if d.state.value == "submitted"]) == 20
                )
            )
            await sim.drop_all()  # receipts are still pending at the SMSC
            await wait_for(lambda: len(h.observed.final()) == 20)
            assert set(h.observed.final().values()) == {"delivered"}
            assert sim.stats["connections"] >= 2
        sim.config.receipt_delay = 0.3
        async with running_channel(tmp_path, [smsc_table(sim.port)]) as h:
            await h.send_allowed(*[request(f"s{i}") for i in range(5)])
            await wait_for(lambda: len(sim.submitted) == 25)
        # channel gone before the receipts: they wait at the SMSC for the next bind
        async with running_channel(tmp_path, [smsc_table(sim.port)]) as h:
            await wait_for(lambda: len(h.observed.final()) == 5)
            assert h.channel.stats["receipts_unmatched"] == 0


async def test_reconnect_after_drop_loses_nothing(tmp_path):
    """The SMSC drops the connection twice mid-stream; every message still arrives."""
    async with (
        running_simulator(drop_after_pdus=150, drop_times=2) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, window=20)]) as h,
    ):
        await h.send_allowed(*[request(f"d{i}", text=f"m{i}") for i in range(600)])
        await wait_for(lambda: len(h.observed.final()) == 600, limit=30)
        assert {f"m{i}" for i in range(600)} <= set(sim.texts())
        assert sim.stats["dropped_connections"] == 2
        assert set(h.observed.final().values()) == {"delivered"}


async def test_throttling_backs_off_and_keeps_messages(tmp_path):
    """ESME_RTHROTTLED answers slow the account down; every message is sent later.
    (ESME_RMSGQFUL is per destination: see test_sms_smpp_operator.py.)"""
    for status in (0x58,):
        async with (
            running_simulator(throttle_every=7, throttle_status=status) as sim,
            running_channel(tmp_path / str(status), [smsc_table(sim.port)]) as h,
        ):
            await h.send_allowed(*[request(f"t{i}", text=f"t{i}") for i in range(100)])
            await wait_for(lambda: len(h.observed.final()) == 100, limit=30)
            assert sim.stats["throttled"] >= 10
            assert sorted(sim.texts()) == sorted(f"t{i}" for i in range(100))
            assert set(h.observed.final().values()) == {"delivered"}


async def test_routing_by_prefix_and_no_route(tmp_path):
    """Destinations go to the SMSC with the longest matching prefix; no route means rejected."""
    async with (
        running_simulator() as a,
        running_simulator() as b,
        running_channel(
            tmp_path,
            [
                smsc_table(a.port, name="a", routes=["86138"]),
                smsc_table(b.port, name="b", routes=["861391"]),
            ],
        ) as h,
    ):
        await h.send_allowed(
            *[
                request("x", "8613800000001"),
                request("y", "8613910000001"),
                request("z", "8615000000001"),
            ]
        )
        await wait_for(lambda: len(h.observed.final()) == 3)
        assert [s.destination_addr for s in a.submitted] == ["8613800000001"]
        assert [s.destination_addr for s in b.submitted] == ["8613910000001"]
        assert h.observed.final()["z"] == "rejected"


async def test_permanent_error_rejects_and_receipt_failure_reported(tmp_path):
    """An SMSC error status rejects the message; an UNDELIV receipt reports undeliverable."""
    async with (
        running_simulator(
            reject_prefixes={"86100": 0x0B}, undeliverable_prefixes=("86199",)
        ) as sim,
        running_channel(tmp_path, [smsc_table(sim.port)]) as h,
    ):
        await h.send_allowed(*[request("bad", "8610000000000"), request("und", "8619900000000")])
        await wait_for(lambda: len(h.observed.final()) == 2)
        assert h.observed.final() == {"bad": "rejected", "und": "undeliverable"}


async def test_binary_wap_push_and_campaign_overrides(tmp_path):
    """Binary content goes with esm_class 0x40 and data_coding 4; source address comes from content."""
    udh = bytes([6, 5, 4, 0x0B, 0x84, 0x23, 0xF0])
    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        await h.send_allowed(
            attrs.evolve(
                request("wap"),
                content={
                    "udh": udh,
                    "payload": b"\x01\x06" + b"x" * 20,
                    "source_addr": "1065800",
                    "priority_flag": 2,
                    "validity": "2h",
                },
            )
        )
        await wait_for(lambda: sim.submitted)
        s = sim.submitted[0]
        assert (s.esm_class, s.data_coding, s.source_addr) == (0x40, 0x04, "1065800")
        assert (s.priority_flag, s.validity_period) == (2, "000000020000000R")
        assert s.short_message.startswith(udh)


async def test_admin_snapshot(tmp_path):
    """The smpp admin data shows binds, window usage and the outbox depth."""
    async with (
        running_simulator() as sim,
        running_channel(tmp_path, [smsc_table(sim.port, binds=2)]) as h,
    ):
        await wait_for(lambda: len(sim.bound()) == 2)
        snap = h.channel.snapshot()
        binds = snap["smsc"]["main"]["binds"]
        assert [b["state"] for b in binds] == ["bound", "bound"]
        assert snap["outbox_depth"] == 0 and "password" not in repr(snap)
        from plugins.sms_smpp import _render

        text = _render(snap)
        assert "main/0" in text and "window 0/10" in text and "secret" not in text


async def test_embedded_simulator_demo_mode(tmp_path):
    """With embedded_simulator the channel starts the bundled SMSC and delivers through it."""
    table = smsc_table(1)  # host/port replaced by the embedded simulator's
    async with running_channel(
        tmp_path, [table], extra={"embedded_simulator": True, "simulator_receipt_delay": "0.05s"}
    ) as h:
        await h.send_allowed(request("demo", text="您好 demo"))
        await wait_for(lambda: h.observed.final().get("demo") == "delivered")
        assert h.channel.simulator.texts() == ["您好 demo"]


async def test_receipt_ids_in_decimal_text_only(tmp_path):
    """Receipts with only text and a decimal id match hex submit ids with receipt_id = dec_to_hex."""
    async with (
        running_simulator(receipt_tlvs=False, receipt_id_decimal=True) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, receipt_id="dec_to_hex")]) as h,
    ):
        await h.send_allowed(*[request(f"x{i}") for i in range(20)])
        await wait_for(lambda: len(h.observed.final()) == 20)
        assert set(h.observed.final().values()) == {"delivered"}


async def test_immediate_receipts_never_lost(tmp_path):
    """Receipts sent at once (possibly before the submit answer is recorded) all find their contact."""
    async with (
        running_simulator(receipt_delay=0.0) as sim,
        running_channel(tmp_path, [smsc_table(sim.port, window=50)]) as h,
    ):
        await h.send_allowed(*[request(f"i{i}") for i in range(500)])
        await wait_for(lambda: len(h.observed.final()) == 500, limit=20)
        assert set(h.observed.final().values()) == {"delivered"}
        assert (
            h.channel.stats["receipts"] == 500
        )  # early ones (before the submit was recorded) included


async def test_reload_applies_rates_and_message_settings_without_rebinding(tmp_path):
    """A reload changes the rate and the source address at once; connection keys need a restart."""
    from plugins.sms_smpp.config import parse_sms_config

    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        await wait_for(lambda: sim.bound())
        new = parse_sms_config(
            {"smsc": [smsc_table(sim.port, rate=50, source_addr="1065899", window=20)]}
        )
        restart = h.channel.reload(new)
        assert restart == ["smsc[main].window"]
        assert h.channel.accounts["main"].bucket.rate == 50
        await h.send_allowed(request("after"))
        await wait_for(lambda: sim.submitted)
        assert sim.submitted[0].source_addr == "1065899"
        assert sim.stats["connections"] == 1


async def test_drain_waits_for_answers_and_records(tmp_path):
    """drain() returns once every message handed to a bind is answered and recorded."""
    async with (
        running_simulator(response_delay=0.2) as sim,
        running_channel(tmp_path, [smsc_table(sim.port)]) as h,
    ):
        await h.send_allowed(*[request(f"q{i}") for i in range(5)])
        await wait_for(lambda: len(sim.submitted) == 5)
        await h.channel.drain()
        counts = await h.outbox.counts("sms")
        assert counts.get("submitted", 0) + counts.get("delivered", 0) == 5


async def test_mo_reassembled_from_sar_tlvs(tmp_path):
    """Long MO messages that carry SAR TLVs instead of a UDH are reassembled too."""
    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        for seq, part in ((2, "world"), (1, "hello ")):
            event = deliver_sm(seq, part.encode(), sar=(77, 2, seq))
            assert await h.channel.on_deliver(event, "main/0") == 0
        assert [m.text for m in h.observed.mo] == ["hello world"]


async def test_malformed_long_mo_is_answered_and_counted(tmp_path):
    """An MO segment out of range, or parts mixing text and binary, is acknowledged and counted, never raised."""
    from adapters.smpp.protocol import DeliverSm

    def part(seq: int, sar: tuple, data_coding: int = 0) -> DeliverSm:
        return deliver_sm(
            seq, b"abc", source_addr="8613900000002", data_coding=data_coding, sar=sar
        )

    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        assert await h.channel.on_deliver(part(1, (5, 2, 3)), "main/0") == 0
        assert await h.channel.on_deliver(part(2, (6, 2, 1)), "main/0") == 0
        assert await h.channel.on_deliver(part(3, (6, 2, 2), data_coding=0x04), "main/0") == 0
        assert h.observed.mo == []
        assert h.channel.stats["mo_unreadable"] == 2


async def test_one_message_taken_twice_goes_on_the_wire_once(tmp_path):
    """Two jobs for one contact in one send batch (its lease expired and it was taken again) send once."""
    from types import SimpleNamespace

    from adapters.smpp.transport import SubmitJob
    from gateway.outbox import OutboxConfig, open_outbox
    from plugins.sms_smpp.channel import SmsChannel
    from plugins.sms_smpp.config import parse_sms_config

    config = parse_sms_config({"smsc": [smsc_table(1)]})
    async with open_outbox(tmp_path / "db", OutboxConfig(), run_scheduler=False) as ob:
        # no contact control here: the decision is a plain value
        await ob.enqueue(
            ContactDecision(request=request("x"), outcome=Outcome.ALLOWED, decided_at=time.time())
        )
        async with ob.open_queue("sms") as queue:
            assert len(await queue.take(1)) == 1
            channel = SmsChannel(SimpleNamespace(outbox=ob), config)
            channel._queue = queue
            first, second = (SubmitJob(key="x", segments=[{}]) for _ in range(2))
            await channel.before_send([first, second])
            assert (first.done, second.done) == (False, True)


async def test_failing_report_of_an_unsendable_message_does_not_stop_the_feeder(tmp_path):
    """Contact control failing (Redis down) while a no-route message is rejected: later messages still go out."""
    async with (
        running_simulator() as sim,
        running_channel(tmp_path, [smsc_table(sim.port, routes=["86138"])]) as h,
    ):

        async def down(delivery):
            raise ConnectionError("contact control unavailable")

        h.control.reconcile = down  # the real control, failing its reconciliations
        await h.send_allowed(request("lost", "8615000000001"))
        await wait_for(lambda: h.channel.stats["no_route"] == 1)
        await h.send_allowed(request("ok", "8613800000001"))
        await wait_for(lambda: [s.destination_addr for s in sim.submitted] == ["8613800000001"])
        assert (await h.outbox.show("lost"))["state"] == "rejected"


async def test_content_that_breaks_encoding_is_rejected_alone(tmp_path):
    """Content no encoder expects (an infinite priority_flag) rejects that message only; the next is sent."""
    async with running_simulator() as sim, running_channel(tmp_path, [smsc_table(sim.port)]) as h:
        await h.send_allowed(request("inf", priority_flag=float("inf")))
        await h.send_allowed(request("fine", "8613800000002"))
        await wait_for(lambda: len(h.observed.final()) == 1 and sim.submitted)
        assert h.observed.final() == {"inf": "rejected"}
        assert [s.destination_addr for s in sim.submitted] == ["8613800000002"]


SMS_CAP_1 = {
    "caps": {"sms_day": {"scope": "channel", "channel": "sms", "window": "24h", "limit": 1}}
}


async def test_caps_and_blacklist_hold_at_the_channel_boundary(tmp_path):
    """Under a cap of 1 a delivered SMS blocks the next, an undeliverable one is refunded; a blacklisted number never reaches the SMSC."""
    async with (
        running_simulator(receipt_delay=0.02, undeliverable_prefixes=("86199",)) as sim,
        running_channel(tmp_path, [smsc_table(sim.port)], contact=SMS_CAP_1) as h,
    ):
        await h.control.lists.add("blacklist", "8613800000009")
        await h.send_allowed(request("ok", "8613800000001"), request("und", "8619900000001"))
        await wait_for(lambda: len(h.observed.final()) == 2)
        assert await h.ledger_events("und") == ["allowed", "committed", "refunded"]
        again = await h.send(
            request("ok2", "8613800000001"),
            request("und2", "8619900000001"),
            request("dnd", "8613800000009"),
        )
        assert [(d.outcome.value, d.reason) for d in again] == [
            ("suppressed", "cap.channel.rolling"),
            ("allowed", None),
            ("suppressed", "dnd.blacklist"),
        ]
        await wait_for(lambda: len(h.observed.final()) == 3)
        assert sorted(s.destination_addr for s in sim.submitted) == [
            "8613800000001",
            "8619900000001",
            "8619900000001",
        ]


async def test_message_waiting_in_the_outbox_keeps_its_place_under_the_cap(tmp_path):
    """A message queued longer than reservation_timeout (SMSC down) and a later one: at most one reaches the subscriber under a cap of 1."""
    with socket.socket() as s:  # a port with no SMSC behind it yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    contact = {**SMS_CAP_1, "reservation_timeout": "1s"}
    async with running_channel(tmp_path, [smsc_table(port)], contact=contact) as h:
        await h.send_allowed(request("first", "8613800000001"))
        await trio.sleep(1.3)  # real time: the SMSC stays unreachable past the reservation
        await h.send(request("second", "8613800000001"))
        async with running_simulator(port=port) as sim:
            await wait_for(lambda: sim.bound())
            with trio.move_on_after(1.0):
                await wait_for(lambda: len(sim.submitted) >= 2)
            assert [s.destination_addr for s in sim.submitted] == ["8613800000001"]
