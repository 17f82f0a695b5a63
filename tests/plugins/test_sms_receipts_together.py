"""Receipts that a bind reads together are settled together: one writer op, one commit.

Each receipt, its final state and its reconciliation in contact control stay in one
transaction, and a receipt is acknowledged only once durable. A receipt whose settling fails
fails alone (ESME_RX_T_APPN: the SMSC sends it again); a failed commit holds back the receipts
only, not an MO message read with them. Real channel, real SQLite contact control, the SMSC
simulator over loopback (its own receipts turned off: the test writes them).
"""

from __future__ import annotations

import contextlib

import trio

from adapters.smpp import protocol as p
from adapters.smpp.protocol import DeliverSm
from gateway.outbox import store
from tests.gateway.test_store_executed import GatedConnection
from tests.plugins.sms_smpp_harness import (
    deliver_sm,
    request,
    running_channel,
    running_simulator,
    smsc_table,
    wait_for,
)


def receipt(message_id: str, seq: int, stat: str = "DELIVRD") -> DeliverSm:
    state = {"DELIVRD": 2, "UNDELIV": 5}[stat]
    text = (
        f"id:{message_id} sub:001 dlvrd:001 submit date:2611301200 done date:2611301200"
        f" stat:{stat} err:000 text:hello"
    )
    return deliver_sm(
        seq,
        text.encode(),
        source_addr="8613800000000",
        esm_class=0x04,
        receipted_message_id=message_id,
        message_state=state,
    )


def mo(seq: int) -> DeliverSm:
    return deliver_sm(seq, b"STOP", source_addr="8613900000009")


@contextlib.asynccontextmanager
async def _channel(tmp_path):
    """The SMSC simulator (no receipts of its own: the tests write them) and the channel."""
    async with (
        running_simulator(receipt_delay=None) as sim,
        running_channel(tmp_path, [smsc_table(sim.port)]) as h,
    ):
        yield sim, h


async def _submitted(h, sim, n: int) -> list[str]:
    """Send ``n`` messages (to n subscribers) and wait until their submit answers are recorded."""
    await h.send_allowed(*[request(f"m{i}", msisdn=f"86138000001{i:02d}") for i in range(n)])
    await wait_for(lambda: len(sim.submitted) == n)
    await wait_for(lambda: h.channel.stats["submitted"] == n)
    await h.outbox.writer.flush()
    return [s.message_id for s in sim.submitted]


async def test_receipts_read_together_are_one_op(tmp_path):
    async with _channel(tmp_path) as (sim, h):
        ids = await _submitted(h, sim, 20)
        writer = h.outbox.writer
        ops = writer.operations
        statuses = await h.channel.on_deliver_many(
            [receipt(mid, i) for i, mid in enumerate(ids)], "main/0"
        )
        assert statuses == [p.ESME_ROK] * 20
        assert writer.operations - ops == 1  # one op for the twenty (was one each)
        assert (await h.outbox.counts("sms")) == {"delivered": 20}
        assert h.channel.stats["receipts"] == 20
        assert sum(1 for d in h.observed.deliveries if d.state.value == "delivered") == 20


async def test_a_receipt_that_fails_fails_alone(tmp_path, monkeypatch):
    async with _channel(tmp_path) as (sim, h):
        ids = await _submitted(h, sim, 5)
        real = store.settle_receipt
        bad = f"main/{ids[2]}"

        def settle(conn, channel, message_id, *args):
            if message_id == bad:
                raise ValueError("this one cannot be settled")
            return real(conn, channel, message_id, *args)

        monkeypatch.setattr(store, "settle_receipt", settle)
        statuses = await h.channel.on_deliver_many(
            [receipt(mid, i) for i, mid in enumerate(ids)], "main/0"
        )
        assert statuses == [0, 0, p.ESME_RX_T_APPN, 0, 0]
        assert (await h.outbox.counts("sms")) == {"delivered": 4, "submitted": 1}
        monkeypatch.setattr(store, "settle_receipt", real)
        # the SMSC sends it again: now it settles
        assert await h.channel.on_deliver_many([receipt(ids[2], 9)], "main/0") == [0]
        assert (await h.outbox.counts("sms")) == {"delivered": 5}


async def test_a_failed_commit_holds_back_the_receipts_not_the_mo(tmp_path):
    async with _channel(tmp_path) as (sim, h):
        ids = await _submitted(h, sim, 3)
        writer = h.outbox.writer
        gated = GatedConnection(writer.conn)
        writer.conn = gated
        gated.fail = True  # every COMMIT fails (disk full, I/O error)
        with trio.fail_after(10):
            statuses = await h.channel.on_deliver_many(
                [receipt(ids[0], 1), mo(2), receipt(ids[1], 3)], "main/0"
            )
        assert statuses == [p.ESME_RX_T_APPN, p.ESME_ROK, p.ESME_RX_T_APPN]
        assert [m.text for m in h.observed.mo] == ["STOP"]  # handed on once, acknowledged
        gated.fail = False
        assert (await h.outbox.counts("sms")) == {"submitted": 3}
        statuses = await h.channel.on_deliver_many(
            [receipt(ids[0], 4), receipt(ids[1], 5, stat="UNDELIV"), receipt(ids[2], 6)],
            "main/0",
        )
        assert statuses == [0, 0, 0]
        assert (await h.outbox.counts("sms")) == {"delivered": 2, "undeliverable": 1}
