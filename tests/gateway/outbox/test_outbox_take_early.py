"""The outbox hands out messages once its take has run, without waiting for that commit.

A lease need not be durable before a message is used: only ``mark_sending``, committed in a
later batch, lets one go out, and it finds no lease if the take's batch failed. This took one
commit off every message's way to the wire (scripts/bench_e2e.py: event-to-submit p50 65 ->
32 ms at 5,000 events/s).
"""

from __future__ import annotations

import trio
from test_outbox import allow, cfg, open_ob

from tests.gateway.test_store_executed import GatedConnection


async def test_take_does_not_wait_for_its_commit(tmp_path):
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue(await allow(ob, "a"))
        gated = GatedConnection(ob.writer.conn)
        ob.writer.conn = gated
        gated.gate.clear()  # every COMMIT from now on waits
        async with ob.open_queue("sms") as q:
            with trio.fail_after(5):
                (msg,) = await q.take(1)
            assert msg.contact_id == "a"
            assert gated.commits == 0  # the lease is not durable yet
            gated.gate.set()
            assert await q.mark_sending(["a"]) == {"a"}
        assert (await ob.counts("sms")) == {"sending": 1}


async def test_a_take_whose_commit_fails_sends_nothing(tmp_path):
    """The lease was rolled back: mark_sending marks nothing, the message is taken again."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue(await allow(ob, "a"))
        gated = GatedConnection(ob.writer.conn)
        ob.writer.conn = gated
        gated.gate.clear()
        gated.fail = True
        async with ob.open_queue("sms") as q:
            (msg,) = await q.take(1)
            gated.gate.set()
            await ob.writer.flush()  # the take's batch fails
            gated.fail = False
            assert await q.mark_sending([msg.contact_id]) == set()  # not to be sent
            with trio.fail_after(5):
                (again,) = await q.take(1)
            assert again.contact_id == "a"
            assert await q.mark_sending(["a"]) == {"a"}
        assert (await ob.counts("sms")) == {"sending": 1}
