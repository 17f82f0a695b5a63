"""Priority pre-emption, the `why` explanations, and atomic bulk list replace."""

from __future__ import annotations

import time

import trio
import trio.lowlevel
from contact_helpers import local_ts, req

from gateway.contact.explain import explain_rows
from gateway.model import Outcome

DAY1 = {"caps": {"sms_day": {"scope": "channel", "channel": "sms", "window": "day", "limit": 1}}}


async def test_higher_priority_preempts_unsent_lower_reservation(open_backend) -> None:
    """The outbox withdraws the low-priority message; its slot goes to the high-priority campaign."""
    asked = []

    async def preemptor(contact_id: str) -> bool:
        asked.append(contact_id)
        return True

    async with open_backend(DAY1, preemptor=preemptor) as cc:
        assert (await cc.decide(req(contact_id="low", campaign="promo", priority=1))).allowed
        high = await cc.decide(req(contact_id="high", campaign="alert", priority=9))
        assert high.allowed and asked == ["low"]
        assert not await cc.release("low", "again")  # already refunded by pre-emption
        events = [r["event"] for r in await cc.ledger.query(contact_id="low")]
        assert events[0] == "preempted"
        # an equal or lower priority never pre-empts
        assert (await cc.decide(req(contact_id="peer", priority=9))).reason == "cap.channel.day"
        assert asked == ["low"]


async def test_no_preemption_when_outbox_refuses_or_committed(open_sqlite) -> None:
    """An already-submitted message (cancel False) or a committed contact is never pre-empted."""

    async def refuse(contact_id: str) -> bool:
        return False

    async with open_sqlite(DAY1, preemptor=refuse) as cc:
        await cc.decide(req(contact_id="low", priority=1))
        d = await cc.decide(req(contact_id="high", priority=9))
        assert d.reason == "cap.channel.day"
        assert cc.open_reservations() == 1

    async def allow(contact_id: str) -> bool:
        return True

    async with open_sqlite(DAY1, preemptor=allow) as cc:
        await cc.decide(req("862", contact_id="low2", priority=1))
        await cc.commit("low2")
        assert (
            await cc.decide(req("862", contact_id="high2", priority=9))
        ).reason == "cap.channel.day"


async def test_why_explains_rule_count_and_window(open_sqlite, clock) -> None:
    """`why` names the rule, the count against the limit, the window and the list."""
    clock.now = local_ts(2026, 11, 23, 10, 0)
    async with open_sqlite(dict(DAY1, contact_hours={"sms": "08:00-21:00"})) as cc:
        await cc.lists.add("vip_protected", "869", source="crm", reason="gold")
        await cc.decide(req(contact_id="a", campaign="promo"))
        await cc.commit("a")
        await cc.decide(req(contact_id="b", campaign="promo2"))
        await cc.decide(req("869", contact_id="v"))
        clock.now = local_ts(2026, 11, 23, 22, 0)
        await cc.decide(req(contact_id="q", realtime=False))
        text = explain_rows(await cc.ledger.query(msisdn="8613800000001"), cc.engine.clock)
        assert "SUPPRESSED by cap 'sms_day' (cap.channel.day): 1 of 1" in text
        assert "since 2026-11-23 00:00 CST" in text
        assert "handed to the network" in text
        assert "DEFERRED by quiet hours (quiet_hours.sms): sms may contact only 08:00-21:00" in text
        assert "presented again at 2026-11-24 08:00 CST" in text
        vip = explain_rows(await cc.ledger.query(msisdn="869"), cc.engine.clock)
        assert "a protected VIP" in vip and "source crm" in vip


async def test_bulk_replace_is_atomic_for_readers(open_sqlite) -> None:
    """While a list is replaced by a million entries, every decision sees the whole old or whole new list."""
    async with open_sqlite() as cc:
        old = [(str(8613000000000 + i), "old", None) for i in range(1_000)]
        new = [(str(8614000000000 + i), "new", None) for i in range(1_000_000)]
        await cc.lists.replace("blacklist", old)
        seen = set()
        done = trio.Event()

        async def reader() -> None:
            while not done.is_set():
                a = (await cc.check(req("8613000000000"))).outcome is Outcome.SUPPRESSED
                b = (await cc.check(req("8614000999999"))).outcome is Outcome.SUPPRESSED
                seen.add((a, b))
                await trio.sleep(0.001)  # leave the GIL to the import thread

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.sleep(0.01)
            started = time.perf_counter()
            assert await cc.lists.replace("blacklist", new, source="boss") == 1_000_000
            took = time.perf_counter() - started
            await trio.sleep(0.01)
            done.set()
        print(f"1,000,000-entry list import: {took:.2f} s")  # shown with pytest -s
        assert seen == {(True, False), (False, True)}  # old, then new; never both, never neither
        assert cc.lists.size("blacklist") == 1_000_000
        assert took < 120


async def test_lists_survive_restart(open_sqlite) -> None:
    """List entries are read back from SQLite when the backend reopens."""
    async with open_sqlite() as cc:
        await cc.lists.add("opt_out_class", "861", scope="telemarketing", reason="asked")
        await cc.lists.replace("greylist", [("862", "", None)])
    async with open_sqlite() as cc:
        assert (
            await cc.decide(req("861", campaign_class="telemarketing"))
        ).reason == "dnd.opt_out_class"
        assert (await cc.decide(req("862"))).reason == "dnd.greylist"


async def test_why_explains_cooldown(open_sqlite) -> None:
    """A cooldown is explained by class and window."""
    async with open_sqlite({"cooldowns": {"telemarketing": "60d"}}) as cc:
        for cid in ("t1", "t2"):
            await cc.decide(req(contact_id=cid, channel="ivr", campaign_class="telemarketing"))
        text = explain_rows(await cc.ledger.query(msisdn="8613800000001"), cc.engine.clock)
        assert "SUPPRESSED by cooldown (cooldown.telemarketing): a telemarketing contact" in text
        assert "in the last 60d since" in text


async def _race(open_sqlite, path, channel_delay: int, campaign_delay: int) -> bool:
    from gateway.outbox import OutboxConfig, open_outbox

    outboxes = []

    async def preemptor(contact_id: str) -> bool:
        return await outboxes[0].cancel(contact_id, "preempted")

    async with (
        open_sqlite(DAY1, preemptor=preemptor, fresh=True) as cc,
        open_outbox(path, OutboxConfig(), run_scheduler=False) as ob,
    ):
        outboxes.append(ob)
        await ob.enqueue(await cc.decide(req(contact_id="low", priority=1)))
        result = {}
        async with ob.open_queue("sms") as queue:
            assert len(await queue.take(1)) == 1

            async def channel() -> None:
                for _ in range(channel_delay):
                    await trio.lowlevel.checkpoint()
                result["sent"] = "low" in await queue.mark_sending(["low"])

            async def campaign() -> None:
                for _ in range(campaign_delay):
                    await trio.lowlevel.checkpoint()
                result["high"] = (await cc.decide(req(contact_id="high", priority=9))).allowed

            async with trio.open_nursery() as nursery:
                nursery.start_soon(channel)
                nursery.start_soon(campaign)
        assert result["sent"] != result["high"], result
        live = [c["contact_id"] for c in await cc.current_contacts("8613800000001")]
        assert live == (["low"] if result["sent"] else ["high"])
        return result["sent"]


async def test_preemption_racing_the_channel_never_sends_both(open_sqlite, tmp_path) -> None:
    """Real outbox: the channel marking the low message sending races a high-priority decision; one wins, never both."""
    outcomes = {
        await _race(open_sqlite, tmp_path / f"o{n}.sqlite", n % 5, n // 5) for n in range(20)
    }
    assert outcomes == {True, False}  # both orders were exercised
