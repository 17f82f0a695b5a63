"""The outbox hands out messages once its take has run, without waiting for that commit.

A lease need not be durable before a message is used: only ``mark_sending``, committed in a
later batch, lets one go out, and it finds no lease if the take's batch failed. This took one
commit off every message's way to the wire (scripts/bench_e2e.py: event-to-submit p50 65 ->
32 ms at 5,000 events/s).
"""

from __future__ import annotations

import trio
from outbox_stack import request
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


async def test_take_hands_out_the_request_it_was_given(tmp_path, monkeypatch):
    """A message queued by this process is not decoded from its stored text again (a quarter
    of the writer thread's time): take hands out the request the decision carried, unless the
    stored text is not the text kept with it. The memory is bounded."""
    from gateway.outbox import outbox as outbox_module

    async with open_ob(tmp_path / "db", cfg()) as ob:
        a = await allow(ob, "a")
        await ob.enqueue(a)
        b = await allow(ob, "b")
        await ob.enqueue(b)
        impostor = request("b", text="not what was stored")
        ob._staged_requests["b"] = ('{"contact_id":"b"}', impostor)
        async with ob.open_queue("sms") as q:
            taken = {m.contact_id: m.request for m in await q.take(2)}
            assert await q.mark_sending(["a", "b"]) == {"a", "b"}
        assert taken["a"] is a.request
        assert taken["b"] == b.request and taken["b"] is not impostor
        assert ob._staged_requests == {}

        monkeypatch.setattr(outbox_module, "STAGED_REQUESTS", 3)
        decisions = [await allow(ob, f"n{i}", msisdn=f"86138000000{i:02d}") for i in range(7)]
        for d in decisions:
            await ob.enqueue(d)
            assert len(ob._staged_requests) <= 3
        async with ob.open_queue("sms") as q:
            got = {m.contact_id: m.request for m in await q.take(10)}
        assert got == {d.request.contact_id: d.request for d in decisions}


async def test_held_requests_full_keeps_the_oldest_and_forgets_what_cannot_be_taken(
    tmp_path, monkeypatch
):
    """Full, the memory keeps the requests queued first (the next to be taken) and holds no
    newer one; a cancel, a duplicate and an expiry each take their request out of it."""
    from gateway.outbox import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "STAGED_REQUESTS", 3)
    async with open_ob(tmp_path / "db", cfg(expiry=60)) as ob:
        decisions = [await allow(ob, f"n{i}", msisdn=f"86138000000{i:02d}") for i in range(5)]
        await ob.enqueue_many(decisions)
        assert list(ob._staged_requests) == ["n0", "n1", "n2"]
        assert await ob.cancel("n1", "preempted")
        assert list(ob._staged_requests) == ["n0", "n2"]
        assert await ob.enqueue(decisions[2]) is False  # a duplicate: the stored one stays
        assert list(ob._staged_requests) == ["n0"]
        start = ob.clock()
        ob.clock = lambda: start + 61
        await ob.tick()
        assert ob._staged_requests == {}


def test_mark_sending_marks_each_leased_entry_once(tmp_path):
    """One statement per 500 ids: every leased entry named is marked once, whatever the
    duplicates; entries not leased (queued, already sending) are not."""
    from gateway.outbox import store
    from gateway.store import open_sqlite

    conn = open_sqlite(tmp_path / "s.sqlite")
    store.create(conn)
    rows = [(f"c{i}", "sms", "k", "8613800000000", 0, "{}", 0.0, 1e12, 0.0) for i in range(1203)]
    conn.execute("BEGIN")
    store.insert_entries(conn, rows)
    leased = [f"c{i}" for i in range(1200)]
    conn.execute(
        f"UPDATE outbox_entries SET state = 'leased' WHERE contact_id IN ({','.join('?' * 1200)})",
        leased,
    )
    conn.execute("UPDATE outbox_entries SET state = 'sending' WHERE contact_id = 'c1201'")
    conn.execute("COMMIT")
    asked = [*leased, "c5", "c700", "c1202", "c1201", "nobody"]
    marked = store.mark_sending(conn, asked, 1.0)
    assert sorted(marked) == sorted(leased) and len(marked) == 1200
    assert store.mark_sending(conn, ["c5"], 2.0) == []  # sending already
    states = dict(conn.execute("SELECT state, count(*) FROM outbox_entries GROUP BY state"))
    assert states == {"sending": 1201, "queued": 2}
