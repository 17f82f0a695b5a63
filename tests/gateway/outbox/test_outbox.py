"""The durable outbox: idempotent enqueue, leases, sending marks, crash recovery, retries, timers."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import trio
from outbox_stack import open_stack, request

from gateway.errors import ConfigError
from gateway.model import Delivery, DeliveryState
from gateway.outbox import OutboxConfig, open_outbox, parse_outbox_config
from tests.fakes.fake_contact_control import FakeContactControl


def open_ob(db, config, **kw):
    """The outbox as the daemon opens it: with the real SQLite contact control on its writer."""
    return _Outbox(open_stack(None, db=db, config=config, **kw))


class _Outbox:
    """``async with open_ob(...) as ob``: the stack's outbox (``ob.gateway`` is the Gateway)."""

    def __init__(self, cm):
        self.cm = cm

    async def __aenter__(self):
        self.stack = await self.cm.__aenter__()
        return self.stack.outbox

    async def __aexit__(self, *exc):
        return await self.cm.__aexit__(*exc)


async def allow(ob, contact_id, **kw):
    """An ALLOWED decision of the real contact control for a fresh request."""
    decision = await ob.gateway.contact_control.decide(request(contact_id, **kw))
    assert decision.outcome == "allowed", decision
    return decision


def allowed(contact_id, **kw):
    """An ALLOWED decision made up without contact control (fault-injection tests only)."""
    from tests.fakes.fake_contact_control import allowed as made_up

    return made_up(contact_id, **kw)


def fake_gateway(control=None):
    reported = []

    async def report_delivery(delivery):
        reported.append(delivery)
        if gw.outbox is not None:
            await gw.outbox.record_delivery(delivery)

    gw = SimpleNamespace(
        contact_control=control, outbox=None, report_delivery=report_delivery, reported=reported
    )
    return gw


async def wait_for(predicate, limit=5.0):
    """Poll ``predicate`` (the outbox's scheduler runs on its own timer)."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


def cfg(**kw):
    return OutboxConfig(scheduler_interval=0.05, retry_backoff=0.01, retry_backoff_max=0.05, **kw)


async def test_enqueue_is_idempotent_and_survives_reopen(tmp_path):
    """Enqueueing a contact twice queues it once, and a reopened outbox still has it."""
    db = tmp_path / "gw.sqlite"
    async with open_ob(db, cfg()) as ob:
        assert await ob.enqueue(await allow(ob, "a")) is True
        assert await ob.enqueue(await allow(ob, "a")) is False
        assert (
            await ob.enqueue_many(
                [await allow(ob, "a"), await allow(ob, "b"), await allow(ob, "c")]
            )
            == 2
        )
        assert ob.depth("sms") == 3
    async with open_ob(db, cfg()) as ob:
        assert ob.depth("sms") == 3
        async with ob.open_queue("sms") as q:
            taken = await q.take(10)
        assert [m.contact_id for m in taken] == ["a", "b", "c"]
        assert taken[0].request.content["text"] == "hello"


async def test_priority_then_fifo(tmp_path):
    """Higher priority is taken first, then in enqueue order; binary content round-trips."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue(await allow(ob, "low"))
        await ob.enqueue(await allow(ob, "high", priority=5, udh=b"\x06\x05\x04\x0b\x84\x23\xf0"))
        async with ob.open_queue("sms") as q:
            taken = await q.take(10)
        assert [m.contact_id for m in taken] == ["high", "low"]
        assert taken[0].request.content["udh"] == b"\x06\x05\x04\x0b\x84\x23\xf0"


async def test_crash_recovery_marks_sending_unknown(tmp_path):
    """After a crash, leased messages are queued again; messages marked sending become unknown."""
    db = tmp_path / "db"
    async with open_ob(db, cfg()) as ob:
        await ob.enqueue_many([await allow(ob, str(i)) for i in range(4)])
        q = ob.open_queue("sms")
        queue = await q.__aenter__()  # never exited: the "crash" leaves leases behind
        taken = await queue.take(4)
        assert await queue.mark_sending([taken[0].contact_id, taken[1].contact_id]) == {"0", "1"}
    async with open_ob(db, cfg()) as ob:
        counts = await ob.counts("sms")
        assert counts == {"unknown": 2, "queued": 2}
        assert ob.stats["unknown"] == 2
        reported = ob.gateway.hook.reported
        await wait_for(lambda: len(reported) >= 2)
        assert {d.contact_id for d in reported} == {"0", "1"}
        assert all(d.state is DeliveryState.UNKNOWN for d in reported)
        # they may have reached the subscriber: contacts, not reservations left to expire
        contacts = await ob.gateway.contact_control.current_contacts("8613800000000")
        assert {c["contact_id"]: c["state"] for c in contacts}["0"] == "committed"


async def test_resend_unknown_requeues(tmp_path):
    """With resend_unknown, messages caught sending are queued again and counted as resent."""
    db = tmp_path / "db"
    async with open_ob(db, cfg()) as ob:
        await ob.enqueue(await allow(ob, "x"))
        queue = await ob.open_queue("sms").__aenter__()
        await queue.mark_sending([(await queue.take(1))[0].contact_id])
    async with open_ob(db, cfg(resend_unknown=True)) as ob:
        async with ob.open_queue("sms") as q:
            (msg,) = await q.take(1, max_wait=1)
        assert msg.contact_id == "x" and msg.resent == 1
        assert ob.stats["resent"] == 1


async def test_cancel_only_before_sending(tmp_path):
    """cancel withdraws a queued message; a message already sending cannot be withdrawn."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue_many([await allow(ob, "q"), await allow(ob, "s")])
        async with ob.open_queue("sms") as q:
            taken = await q.take(2)
            await q.mark_sending(["s"])
            assert await ob.cancel("q", "preempted") is True
            assert await ob.cancel("s", "preempted") is False
            assert await q.mark_sending(["q"]) == set()  # cancelled meanwhile: not sent
        assert {m.contact_id for m in taken} == {"q", "s"}
        assert (await ob.counts())["cancelled"] == 1


async def test_retry_backoff_then_give_up(tmp_path):
    """A transient failure requeues after a backoff; max_attempts ends it as rejected."""
    async with open_ob(tmp_path / "db", cfg(max_attempts=2)) as ob:
        await ob.enqueue(await allow(ob, "r"))
        async with ob.open_queue("sms") as q:
            await q.take(1)
            assert await q.retry("r", "ESME_RSYSERR") == "retry"
            with trio.fail_after(5):
                (again,) = await q.take(1)
            assert again.attempts == 1
            assert await q.retry("r", "ESME_RSYSERR") == "rejected"


async def test_expiry_reports_expired(tmp_path):
    """A message not sent before its expiry is reported expired through the gateway."""
    async with open_ob(tmp_path / "db", cfg(expiry=1)) as ob:
        d = await allow(ob, "old")
        import attrs

        await ob.enqueue(attrs.evolve(d, decided_at=time.time() - 5))
        reported = ob.gateway.hook.reported
        await wait_for(lambda: reported)
        assert reported[0].state is DeliveryState.EXPIRED
        assert (await ob.delivery_counts("c1")) == {"expired": 1}


async def test_deferred_is_redecided_and_queued(tmp_path):
    """A deferred request is presented to contact control at not_before and queued if allowed."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.defer(request("d"), time.time() + 0.1)
        assert ob.depth("sms") == 1
        async with ob.open_queue("sms") as q:
            with trio.fail_after(5):
                (msg,) = await q.take(1)
        assert msg.contact_id == "d"
        rows = await ob.gateway.contact_control.ledger.query(contact_id="d")
        assert [r["event"] for r in rows] == ["allowed"]  # decided by the real control


async def test_receipts_map_all_segments(tmp_path):
    """A message's final state comes once every part has a receipt; the worst part wins."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue(await allow(ob, "m"))
        async with ob.open_queue("sms") as q:
            await q.take(1)
            await q.map_message_ids("m", ["id1", "id2"])
            await ob.record_delivery(
                Delivery(
                    contact_id="m",
                    channel="sms",
                    state=DeliveryState.SUBMITTED,
                    at=1.0,
                    message_id="id1",
                )
            )
            assert await q.apply_receipt("id1", "delivered") == ("m", None)
            assert await q.apply_receipt("id2", "undeliverable") == ("m", "undeliverable")
            assert await q.apply_receipt("nope", "delivered") is None
        assert (await ob.delivery_counts("c1")) == {"submitted": 1}


async def test_group_commit_batches_concurrent_writes(tmp_path):
    """Concurrent record_delivery calls share transactions (group commit)."""
    async with open_ob(tmp_path / "db", cfg()) as ob:
        await ob.enqueue_many([await allow(ob, str(i)) for i in range(200)])
        before = ob.writer.commits
        async with trio.open_nursery() as n:
            for i in range(200):
                n.start_soon(
                    ob.record_delivery,
                    Delivery(
                        contact_id=str(i), channel="sms", state=DeliveryState.SUBMITTED, at=1.0
                    ),
                )
        assert ob.writer.commits - before < 50
        assert (await ob.counts())["submitted"] == 200


def test_config_strict():
    """[outbox] rejects unknown keys and inconsistent backoffs, naming the key."""
    assert parse_outbox_config({"expiry": "2h", "resend_unknown": True}).expiry == 7200
    with pytest.raises(ConfigError, match=r"outbox\.retyr"):
        parse_outbox_config({"retyr": 1})
    with pytest.raises(ConfigError, match="retry_backoff_max"):
        parse_outbox_config({"retry_backoff": "10m", "retry_backoff_max": "1m"})


async def test_expired_lease_returns_to_queue(tmp_path):
    """A message leased and never sent goes back to the queue when its lease runs out."""
    async with open_ob(tmp_path / "db", cfg(lease=1)) as ob:
        await ob.enqueue(await allow(ob, "l"))
        async with ob.open_queue("sms") as q:
            await q.take(1)
            ob.clock = lambda: time.time() + 5  # the lease has run out
            with trio.fail_after(5):
                (again,) = await q.take(1)
        assert again.contact_id == "l"


async def test_finished_entries_are_purged_after_retention(tmp_path):
    """Finished entries older than the retention are deleted with their message ids; others stay."""
    async with open_ob(tmp_path / "db", cfg(retention=60)) as ob:
        await ob.enqueue_many([await allow(ob, "old"), await allow(ob, "live")])
        async with ob.open_queue("sms") as q:
            await q.take(2)
            await q.map_message_ids("old", ["m1"])
        await ob.record_delivery(
            Delivery(contact_id="old", channel="sms", state=DeliveryState.DELIVERED, at=1.0)
        )
        ob.clock = lambda: time.time() + 3600
        await ob.tick()
        assert ob.stats["purged"] == 1
        assert await ob.show("old") is None and await ob.show("live") is not None
        ids = await ob.writer.run(
            lambda c: c.execute("SELECT count(*) FROM outbox_message_ids").fetchone()[0]
        )
        assert ids == 0  # the purged entry's ids went too


async def test_a_purge_backlog_goes_one_chunk_per_pass(tmp_path, monkeypatch):
    """A backlog of finished entries is purged a chunk per scheduler pass (the pass's other
    work is not held up behind it); the ids go once the entries are all gone."""
    from gateway.outbox import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "PURGE_CHUNK", 2)
    async with open_ob(tmp_path / "db", cfg(retention=60), run_scheduler=False) as ob:
        names = [f"p{i}" for i in range(5)]
        await ob.enqueue_many(
            [await allow(ob, n, msisdn=f"8613800000{i:03d}") for i, n in enumerate(names)]
        )
        async with ob.open_queue("sms") as q:
            await q.take(5)
            for n in names:
                await q.map_message_ids(n, [f"m-{n}"])
        for n in names:
            await ob.record_delivery(
                Delivery(contact_id=n, channel="sms", state=DeliveryState.DELIVERED, at=1.0)
            )
        start = time.time()
        ob.clock = lambda: start + 3600

        async def ids() -> int:
            return await ob.writer.run(
                lambda c: c.execute("SELECT count(*) FROM outbox_message_ids").fetchone()[0]
            )

        purged = []
        for _ in range(3):
            await ob.tick()
            purged.append(ob.stats["purged"])
        assert purged == [2, 4, 5]
        assert await ids() == 0


async def test_one_failing_operation_does_not_fail_its_batch(tmp_path):
    """An operation that raises fails alone; the others committed with it still succeed."""

    def broken(conn):
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    async with open_outbox(tmp_path / "db", cfg()) as ob:
        results = {}

        async def run(name, fn, *args):
            try:
                results[name] = await ob._call(fn, *args)
            except Exception as exc:
                results[name] = exc

        from gateway.outbox import store

        rows = [
            (
                f"g{i}",
                "sms",
                "c1",
                "1",
                0,
                store.dump_request(allowed(f"g{i}").request),
                0.0,
                1e12,
                0.0,
            )
            for i in range(3)
        ]
        async with trio.open_nursery() as n:
            n.start_soon(run, "a", store.insert_entries, rows[:1])
            n.start_soon(run, "bad", broken)
            n.start_soon(run, "b", store.insert_entries, rows[1:])
        assert results["a"] == ["g0"] and results["b"] == ["g1", "g2"]
        assert "no_such_table" in str(results["bad"])
        assert (await ob.counts())["queued"] == 3


async def test_deferred_request_survives_a_failed_redecision(tmp_path):
    """A deferred request whose re-decision fails (contact control down) stays deferred and is queued later."""

    class FlakyControl(FakeContactControl):
        down = True

        async def decide(self, request):
            if self.down:
                raise ConnectionError("redis down")
            return await super().decide(request)

    control = FlakyControl()
    gw = fake_gateway(control)
    db = tmp_path / "db"
    async with open_outbox(db, cfg(), gateway=gw, run_scheduler=False) as ob:
        gw.outbox = ob
        await ob.defer(allowed("d1").request, time.time() - 1)
        await ob.defer(allowed("d2").request, time.time() - 1)
        await ob.tick()
        assert ob.depth("sms") == 2
    async with open_outbox(db, cfg(), gateway=gw, run_scheduler=False) as ob:
        gw.outbox = ob
        control.down = False
        await ob.tick()
        async with ob.open_queue("sms") as q:
            taken = await q.take(10, max_wait=1)
        assert sorted(m.contact_id for m in taken) == ["d1", "d2"]
        assert ob.depth("sms") == 2  # queued now, no longer deferred


async def test_unknown_and_expired_reports_survive_a_failing_report(tmp_path):
    """A report that fails (contact control down) is retried next tick for unknown; expired ones after it still go out."""
    db = tmp_path / "db"
    async with open_outbox(db, cfg(expiry=60)) as ob:
        await ob.enqueue_many([allowed("u1"), allowed("e1"), allowed("e2")])
        queue = await ob.open_queue("sms").__aenter__()  # never exited: the "crash"
        (first, *_rest) = await queue.take(1)
        assert await queue.mark_sending([first.contact_id]) == {"u1"}
    reported = []
    failures = iter([True, False, True, False, False])

    async def report_delivery(delivery):
        if next(failures):
            raise ConnectionError("contact control down")
        reported.append((delivery.contact_id, delivery.state.value))

    gw = SimpleNamespace(contact_control=None, report_delivery=report_delivery)
    clock = [time.time()]
    async with open_outbox(
        db, cfg(expiry=60), gateway=gw, clock=lambda: clock[0], run_scheduler=False
    ) as ob:
        await ob.tick()  # the unknown report fails: kept for the next tick
        assert reported == []
        await ob.tick()
        assert reported == [("u1", "unknown")]
        clock[0] += 120  # e1 and e2 expire; the first expired report fails
        await ob.tick()
        assert len(reported) == 2 and reported[1][1] == "expired"
