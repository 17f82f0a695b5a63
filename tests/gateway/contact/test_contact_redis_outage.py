"""A Redis outage (the process killed, restarted on the same port and data) exceeds no cap.

The channel side is played as the SMS channel does it: a submit or receipt report that
raises is logged and dropped. Decisions fail closed during the outage; commits and receipts
are journaled on the node and replayed in order when Redis is back.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

import pytest
import structlog
import trio
from contact_helpers import req
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.contact.config import parse_contact_config
from gateway.contact.redis_backend import open_redis_contact_control
from gateway.errors import ContactControlError
from gateway.model import Delivery, DeliveryState
from tests.fakes.redis_server import RedisServer

LIMIT = 1
CAPS = {
    "caps": {"sms_day": {"scope": "channel", "window": "day", "limit": LIMIT}},
    "reservation_timeout": "1m",
}


def numbers(first: int, n: int) -> list[str]:
    return [str(8613900000000 + i) for i in range(first, first + n)]


class Channel:
    """Reports like plugins/sms_smpp: a report that raises is logged, and the message stays sent."""

    def __init__(self, cc: Any) -> None:
        self.cc = cc
        self.contacts: Counter[str] = Counter()  # msisdn -> messages that reached the subscriber
        self.report_errors = 0

    async def decide(self, msisdn: str, contact_id: str) -> bool:
        return (await self.cc.decide(req(msisdn, contact_id=contact_id))).allowed

    async def _report(self, call: Any) -> None:
        try:
            await call
        except Exception as exc:
            self.report_errors += 1
            structlog.get_logger().error("test.report_failed", error=repr(exc))

    async def submitted(self, msisdn: str, contact_id: str) -> None:
        self.contacts[msisdn] += 1
        await self._report(self.cc.commit(contact_id))

    async def receipt(self, msisdn: str, contact_id: str, state: DeliveryState) -> None:
        if state in (DeliveryState.UNDELIVERABLE, DeliveryState.EXPIRED):
            self.contacts[msisdn] -= 1  # never reached the handset: refunded (refund_on)
        delivery = Delivery(contact_id=contact_id, channel="sms", state=state, at=0.0)
        await self._report(self.cc.reconcile(delivery))


def open_cc(server: RedisServer, path: Any, clock: Any, **extra: Any) -> Any:
    config = parse_contact_config(
        dict(CAPS, backend="redis", redis=f"127.0.0.1:{server.port}", **extra)
    )
    return open_redis_contact_control(config, path, clock=clock)


async def test_outage_covering_decisions_commits_and_receipts(tmp_path, clock) -> None:
    """Killed Redis: decisions refused, commits/receipts journaled and replayed; no cap exceeded."""
    server = RedisServer(data_dir=tmp_path).start()
    try:
        async with open_cc(server, tmp_path / "ledger.sqlite", clock) as cc:
            channel = Channel(cc)
            before = numbers(0, 10)  # sent and committed before the outage
            during = numbers(10, 10)  # submitted during the outage
            delivered = numbers(20, 10)  # submitted and delivered during the outage
            refunded = numbers(30, 5)  # submitted during the outage, then undeliverable
            late = numbers(35, 5)  # submitted during, receipt (undeliverable) once Redis is back
            never = numbers(40, 5)  # never sent: the reservation expires
            everyone = before + during + delivered + refunded + late + never
            for m in everyone:
                assert await channel.decide(m, f"a-{m}")
            for m in before:
                await channel.submitted(m, f"a-{m}")

            server.kill()
            for m in numbers(100, 5):  # fail closed: no decision, no contact
                with pytest.raises(ContactControlError):
                    await cc.decide(req(m, contact_id=f"x-{m}"))
            for m in during + delivered + refunded + late:
                await channel.submitted(m, f"a-{m}")
            for m in delivered:
                await channel.receipt(m, f"a-{m}", DeliveryState.DELIVERED)
            for m in refunded:
                await channel.receipt(m, f"a-{m}", DeliveryState.UNDELIVERABLE)
            status = cc.status()
            assert status["redis_decisions_refused"] == 5
            assert status["redis_journal_pending"] == 10 + 2 * 10 + 2 * 5 + 5
            assert channel.report_errors == 0

            clock.advance(120)  # the outage outlasts reservation_timeout
            server.start(port=server.port)
            for m in late:  # before the journal is replayed: must not overtake the commits
                await channel.receipt(m, f"a-{m}", DeliveryState.UNDELIVERABLE)

            # after recovery every subscriber is asked for again, and sent to if allowed
            again = {m: await channel.decide(m, f"b-{m}") for m in everyone + numbers(100, 5)}
            for m, allowed in again.items():
                if allowed:
                    await channel.submitted(m, f"b-{m}")
            over = {m: n for m, n in channel.contacts.items() if n > LIMIT}
            assert over == {}, f"cap exceeded for {len(over)} subscribers"
            assert cc.status()["redis_journal_pending"] == 0
            for m in everyone:
                counted = await cc.current_contacts(m)
                assert len(counted) <= LIMIT
            # refunds went through: a refunded or never-sent subscriber got the second contact
            assert [
                m for m, allowed in again.items() if allowed
            ] == refunded + late + never + numbers(100, 5)
            for m in refunded + late + never:
                assert [c["contact_id"] for c in await cc.current_contacts(m)] == [f"b-{m}"]
            for m in during + delivered:
                assert [c["contact_id"] for c in await cc.current_contacts(m)] == [f"a-{m}"]
            assert channel.report_errors == 0
            rows = await cc.ledger.query(contact_id=f"a-{during[0]}")
            assert [r["event"] for r in rows] == ["committed", "allowed"]
    finally:
        server.stop()


async def test_journal_survives_a_node_restart_during_the_outage(tmp_path, clock) -> None:
    """A node stopped while Redis is down replays its journal when it starts against Redis again."""
    server = RedisServer(data_dir=tmp_path).start()
    path = tmp_path / "ledger.sqlite"
    try:
        async with open_cc(server, path, clock) as cc:
            channel = Channel(cc)
            for i, m in enumerate(numbers(200, 4)):
                assert await channel.decide(m, f"a-{i}")
            server.kill()
            for i, m in enumerate(numbers(200, 4)):
                await channel.submitted(m, f"a-{i}")
            await channel.receipt(numbers(203, 1)[0], "a-3", DeliveryState.UNDELIVERABLE)
            assert channel.report_errors == 0
        clock.advance(120)
        server.start(port=server.port)
        async with open_cc(server, path, clock) as cc:  # a fresh node process: nothing in memory
            assert cc.status()["redis_journal_pending"] == 0  # replayed before it decides
            channel = Channel(cc)
            allowed = [await channel.decide(m, f"b-{m}") for m in numbers(200, 4)]
            assert allowed == [False, False, False, True]
    finally:
        server.stop()


async def test_replay_is_idempotent(tmp_path, clock) -> None:
    """A journaled commit that had reached Redis (its answer lost) counts once when replayed."""
    server = RedisServer(data_dir=tmp_path).start()
    path = tmp_path / "ledger.sqlite"
    try:
        async with open_cc(server, path, clock) as cc:
            assert (await cc.decide(req("8613900000300", contact_id="i1"))).allowed
            await cc.commit("i1")
            # as if the commit's answer had been lost on the way: the same entry journaled
            await cc.journal.append([(clock(), "i1", "8613900000300", "committed", "", False)])
            await cc.journal.append([(clock(), "i1", "8613900000300", "committed", "", False)])
            assert await cc.replay_journal() == 2
            assert cc.status()["redis_journal_pending"] == 0
            contacts = await cc.current_contacts("8613900000300")
            assert [(c["contact_id"], c["state"]) for c in contacts] == [("i1", "committed")]
            rows = await cc.ledger.query(contact_id="i1")
            assert [r["event"] for r in rows] == ["committed", "allowed"]
        with sqlite3.connect(path) as conn:
            (n,) = conn.execute("SELECT count(*) FROM contact_redis_journal").fetchone()
        assert n == 0
    finally:
        server.stop()


async def test_late_commit_of_an_expired_reservation_still_counts(open_redis_cc, clock) -> None:
    """Expiry only marks a reservation: a commit arriving after it (a replay) makes it count again."""
    table = dict(CAPS)
    async with open_redis_cc(table) as a, open_redis_cc(table, prefix=a.prefix) as b:
        assert (await a.decide(req("8613900000400", contact_id="e1"))).allowed
        clock.advance(120)  # past reservation_timeout
        # another node reads the subscriber first: the expired reservation stops counting...
        assert (await b.check(req("8613900000400", contact_id="e2"))).allowed
        # ...and the commit that comes late (the message did go out) makes it count again
        await a.commit("e1")
        assert (await b.decide(req("8613900000400", contact_id="e3"))).reason == "cap.channel.day"
        assert [c["contact_id"] for c in await b.current_contacts("8613900000400")] == ["e1"]


async def test_concurrent_reports_during_outage_share_journal_writes(tmp_path, clock) -> None:
    """Reports arriving together are journaled in few transactions, each contact's in its order."""
    server = RedisServer(data_dir=tmp_path).start()
    try:
        async with open_cc(server, tmp_path / "ledger.sqlite", clock) as cc:
            channel = Channel(cc)
            subscribers = numbers(500, 200)
            for m in subscribers:
                assert await channel.decide(m, f"a-{m}")
            server.kill()

            async def report(i: int, m: str) -> None:
                await channel.submitted(m, f"a-{m}")
                if i % 2:
                    await channel.receipt(m, f"a-{m}", DeliveryState.UNDELIVERABLE)

            async with trio.open_nursery() as nursery:
                for i, m in enumerate(subscribers):
                    nursery.start_soon(report, i, m)
            assert channel.report_errors == 0
            assert cc.journal.journaled == 300
            assert cc.journal.writes < 100
            server.start(port=server.port)
            again = [await channel.decide(m, f"b-{m}") for m in subscribers]
            assert again == [bool(i % 2) for i in range(len(subscribers))]
    finally:
        server.stop()


transition = st.sampled_from(
    [
        ("committed", "", False),
        ("refunded", "refund.undeliverable", False),
        ("released", "rejected", True),
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(st.tuples(st.integers(0, 2), transition), max_size=12),
    expired=st.booleans(),
    crash_after=st.integers(0, 12),
)
async def test_replay_after_a_partial_replay_equals_applying_once(
    open_redis_cc, clock, ops, expired, crash_after
) -> None:
    """Journal replayed after a crash mid-replay (a prefix applied twice): same state and ledger as once."""
    async with open_redis_cc({"reservation_timeout": "1m"}) as cc:
        direct, journaled = "8613900000601", "8613900000602"
        for m in (direct, journaled):
            for k in range(3):
                assert (await cc.decide(req(m, contact_id=f"{m}-{k}"))).allowed
        if expired:
            clock.advance(120)
        now = clock()
        for k, (event, reason, only) in ops:
            await cc._apply([(now, f"{direct}-{k}", direct, event, reason, only)])
        entries = [(now, f"{journaled}-{k}", journaled, e, r, o) for k, (e, r, o) in ops]
        if entries:
            await cc.journal.append(entries)
            await cc._apply(entries[:crash_after])  # applied, then the node died before removing
        assert await cc.replay_journal() == len(entries)

        async def state(m: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
            live = [(c["contact_id"][-1], c["state"]) for c in await cc.current_contacts(m)]
            rows = await cc.ledger.query(msisdn=m, limit=1000)
            return live, sorted((r["contact_id"][-1], r["event"]) for r in rows)

        assert await state(direct) == await state(journaled)
