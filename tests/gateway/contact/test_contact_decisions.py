"""Decisions of the SQLite backend: lists, contact hours, caps, cooldowns, reservations."""

from __future__ import annotations

import trio
from contact_helpers import BERLIN, local_ts, req

from gateway.model import Delivery, DeliveryState, Outcome


async def sent(cc, request):
    """Decide and, if allowed, commit (as the channel would on submission)."""
    d = await cc.decide(request)
    if d.allowed:
        await cc.commit(request.contact_id)
    return d


CAPS = {
    "sms_day": {"scope": "channel", "channel": "sms", "window": "day", "limit": 2},
    "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
    "per_campaign": {
        "scope": "campaign",
        "window": "lifetime",
        "limit": 1,
        "campaign_class": "marketing",
    },
}


async def test_dnd_categories_and_exemptions(open_backend) -> None:
    """Listed subscribers are suppressed with the list as reason; exemptions never cover blacklist."""
    async with open_backend({"exemptions": {"service": ["greylist", "opt_out_channel"]}}) as cc:
        await cc.lists.add("blacklist", "861", source="boss", reason="fraud")
        await cc.lists.add("greylist", "862")
        await cc.lists.add("opt_out_channel", "863", scope="sms")
        d = await cc.decide(req("861", campaign_class="service"))
        assert (d.outcome, d.reason, d.rule) == (Outcome.SUPPRESSED, "dnd.blacklist", "blacklist")
        assert d.detail["source"] == "boss"
        assert (await cc.decide(req("862"))).reason == "dnd.greylist"
        assert (await cc.decide(req("862", campaign_class="service"))).allowed
        assert (await cc.decide(req("863"))).reason == "dnd.opt_out_channel"
        assert (await cc.decide(req("863", channel="ivr"))).allowed  # opted out of sms only
        assert (await cc.decide(req("863", campaign_class="service"))).allowed


async def test_list_entry_expiry(open_sqlite, clock) -> None:
    """An entry with an expiry stops blocking once it expires, and is purged from disk."""
    async with open_sqlite() as cc:
        await cc.lists.add("complaint_sensitive", "861", expires_at=clock.now + 3600)
        assert (await cc.decide(req("861"))).reason == "dnd.complaint_sensitive"
        clock.advance(3601)
        assert (await cc.decide(req("861"))).allowed
        assert await cc.lists.purge_expired() == 1
        assert cc.lists.entries_for("861") == []


async def test_quiet_hours_batch_deferred_realtime_suppressed(open_backend, clock) -> None:
    """In quiet hours a batch contact is deferred to the next window; real-time is suppressed unless it asks to defer."""
    clock.now = local_ts(2026, 11, 23, 22, 30)
    async with open_backend({"contact_hours": {"sms": "08:00-21:00"}}) as cc:
        batch = await cc.decide(req(realtime=False))
        assert batch.outcome is Outcome.DEFERRED and batch.reason == "quiet_hours.sms"
        assert batch.not_before == local_ts(2026, 11, 24, 8, 0)
        rt = await cc.decide(req(realtime=True))
        assert (rt.outcome, rt.reason) == (Outcome.SUPPRESSED, "quiet_hours.sms")
        rt_defer = await cc.decide(req(realtime=True, defer_if_quiet=True))
        assert rt_defer.outcome is Outcome.DEFERRED
        assert (await cc.decide(req(channel="wap"))).allowed  # no hours for this channel
        assert cc.open_reservations() == 1
        clock.now = local_ts(2026, 11, 24, 8, 0)
        assert (await cc.decide(req(realtime=False))).allowed


async def test_quiet_hours_in_dst_timezone(open_sqlite, clock) -> None:
    """On the night of the March change in Berlin, deferral lands at 08:00 local."""
    clock.now = local_ts(2026, 3, 28, 23, 0, BERLIN)
    async with open_sqlite(
        {"timezone": "Europe/Berlin", "contact_hours": {"sms": "08:00-21:00"}}
    ) as cc:
        d = await cc.decide(req(realtime=False))
        assert d.not_before == local_ts(2026, 3, 29, 8, 0, BERLIN)
        assert d.not_before - clock.now == 8 * 3600  # 9 wall-clock hours, one of them skipped


async def test_channel_day_cap_resets_at_local_midnight(open_backend, clock) -> None:
    """Two SMS per calendar day: the third is refused with count/limit, and allowed after midnight."""
    clock.now = local_ts(2026, 11, 23, 23, 50)
    async with open_backend({"caps": {"sms_day": CAPS["sms_day"]}}) as cc:
        assert (await sent(cc, req())).allowed
        assert (await sent(cc, req(campaign="c2"))).allowed
        d = await sent(cc, req(campaign="c3"))
        assert (d.outcome, d.reason, d.rule) == (Outcome.SUPPRESSED, "cap.channel.day", "sms_day")
        assert d.detail["count"] == 2 and d.detail["limit"] == 2 and d.detail["window"] == "day"
        assert (await sent(cc, req(channel="ivr"))).allowed  # other channel not capped
        clock.advance(15 * 60)  # 00:05 next day, Shanghai
        assert (await sent(cc, req(campaign="c3"))).allowed


async def test_dst_day_cap_in_berlin(open_backend, clock) -> None:
    """A day cap counts the 25-hour October day as one day in Berlin."""
    clock.now = local_ts(2026, 10, 25, 0, 30, BERLIN)
    caps = {"sms_day": dict(CAPS["sms_day"], limit=1)}
    async with open_backend({"timezone": "Europe/Berlin", "caps": caps}) as cc:
        assert (await sent(cc, req())).allowed
        clock.now = local_ts(2026, 10, 25, 23, 50, BERLIN)  # 24h20m later, same local day
        assert (await sent(cc, req())).reason == "cap.channel.day"
        clock.now = local_ts(2026, 10, 26, 0, 5, BERLIN)
        assert (await sent(cc, req())).allowed


async def test_cross_channel_campaign_and_rolling_caps(open_backend, clock) -> None:
    """All-channel week cap, per-campaign lifetime cap and a rolling window each apply."""
    caps = dict(
        CAPS,
        rolling={"scope": "campaign_class", "campaign_class": "care", "window": "24h", "limit": 1},
    )
    async with open_backend({"caps": caps}) as cc:
        assert (await sent(cc, req(campaign="a"))).allowed
        assert (await sent(cc, req(campaign="a", channel="ivr"))).reason == "cap.campaign"
        assert (await sent(cc, req(campaign="b", channel="ivr"))).allowed
        assert (await sent(cc, req(campaign="c", channel="wap"))).allowed
        assert (await sent(cc, req(campaign="d", channel="mms"))).reason == "cap.all_channels.week"
        clock.advance(7 * 86400)
        assert (await sent(cc, req("862", campaign="e", campaign_class="care"))).allowed
        clock.advance(23 * 3600)
        d = await sent(cc, req("862", campaign="f", campaign_class="care"))
        assert d.reason == "cap.campaign_class.rolling" and d.detail["window"] == "last 1d"
        clock.advance(3601)
        assert (await sent(cc, req("862", campaign="f", campaign_class="care"))).allowed


async def test_cooldown_after_telemarketing(open_backend, clock) -> None:
    """No telemarketing within 60 days of the last one; other classes are unaffected."""
    async with open_backend({"cooldowns": {"telemarketing": "60d"}}) as cc:
        assert (
            await sent(cc, req(campaign="t1", channel="ivr", campaign_class="telemarketing"))
        ).allowed
        clock.advance(59 * 86400)
        d = await sent(cc, req(campaign="t2", channel="ivr", campaign_class="telemarketing"))
        assert d.reason == "cooldown.telemarketing" and d.detail["window"] == "last 60d"
        assert (await sent(cc, req(campaign="m", channel="ivr"))).allowed
        clock.advance(86400 + 1)
        assert (
            await sent(cc, req(campaign="t2", channel="ivr", campaign_class="telemarketing"))
        ).allowed


async def test_release_refunds_exactly_once_and_commit(open_backend) -> None:
    """A released reservation frees its slot once; a committed contact keeps counting."""
    async with open_backend({"caps": {"sms_day": dict(CAPS["sms_day"], limit=1)}}) as cc:
        first = await cc.decide(req(contact_id="x1"))
        assert first.allowed and first.reservation_expires_at is not None
        assert (await cc.decide(req())).reason == "cap.channel.day"
        results = []

        async def release() -> None:
            results.append(await cc.release("x1", "send_failed"))

        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(release)
        assert sum(results) == 1
        assert (await cc.decide(req(contact_id="x2"))).allowed
        await cc.commit("x2")
        assert (await cc.decide(req())).reason == "cap.channel.day"
        events = [r["event"] for r in await cc.ledger.query(msisdn="8613800000001")]
        assert events.count("released") == 1 and "committed" in events


async def test_reconcile_refunds_per_config(open_backend) -> None:
    """Undelivered refunds when configured; delivered keeps counting; rejected before commit releases."""
    async with open_backend(
        {
            "refund_on": ["undeliverable", "rejected"],
            "caps": {"sms_day": dict(CAPS["sms_day"], limit=1)},
        }
    ) as cc:
        await cc.decide(req(contact_id="r1"))
        await cc.commit("r1")
        await cc.reconcile(
            Delivery(contact_id="r1", channel="sms", state=DeliveryState.UNDELIVERABLE, at=0)
        )
        assert (await cc.decide(req(contact_id="r2"))).allowed
        await cc.reconcile(
            Delivery(contact_id="r2", channel="sms", state=DeliveryState.REJECTED, at=0)
        )
        assert (await cc.decide(req(contact_id="r3"))).allowed
        await cc.reconcile(
            Delivery(contact_id="r3", channel="sms", state=DeliveryState.DELIVERED, at=0)
        )
        assert (await cc.decide(req())).reason == "cap.channel.day"
        await cc.reconcile(
            Delivery(contact_id="r3", channel="sms", state=DeliveryState.EXPIRED, at=0)
        )
        assert (await cc.decide(req())).reason == "cap.channel.day"  # expired not in refund_on


async def test_reconcile_without_refund(open_backend, clock) -> None:
    """Not in refund_on: a rejection or expiry before submit releases; after commit it counts."""

    def report(cid: str, state: DeliveryState) -> Delivery:
        return Delivery(contact_id=cid, channel="sms", state=state, at=0)

    async with open_backend(
        {
            "refund_on": [],
            "reservation_timeout": "60s",
            "caps": {"sms_day": dict(CAPS["sms_day"], limit=1)},
        }
    ) as cc:
        await cc.decide(req(contact_id="j1"))
        await cc.reconcile(report("j1", DeliveryState.REJECTED))  # never submitted: released
        await cc.decide(req(contact_id="j2"))
        await cc.commit("j2")
        await cc.reconcile(report("j2", DeliveryState.REJECTED))  # submitted, then rejected: counts
        assert (await cc.decide(req("862", contact_id="j3"))).allowed
        # unsent, expired in the outbox: no contact, released at once (a reservation queued in
        # the outbox has no timeout: the outbox's final state ends it)
        await cc.reconcile(report("j3", DeliveryState.EXPIRED))
        assert [c["contact_id"] for c in await cc.current_contacts("8613800000001")] == ["j2"]
        assert await cc.current_contacts("862") == []
        assert (await cc.decide(req("862", contact_id="j4"))).allowed


async def test_reservation_expires_and_is_swept(open_sqlite, clock) -> None:
    """An unsent reservation stops counting after the timeout; the sweep records it as expired."""
    async with open_sqlite(
        {"reservation_timeout": "60s", "caps": {"sms_day": dict(CAPS["sms_day"], limit=1)}}
    ) as cc:
        await cc.decide(req(contact_id="e1"))
        assert cc.open_reservations() == 1
        clock.advance(61)
        assert cc.open_reservations() == 0
        assert (await cc.decide(req(contact_id="e2"))).allowed
        assert await cc.sweep() == 2 - 1  # e1 only; e2 is fresh
        assert not await cc.release("e1", "late")
        assert (await cc.ledger.query(contact_id="e1"))[0]["event"] == "expired"
        await cc.commit("e1")  # the channel sent it after all: a late contact counts again
        ids = {c["contact_id"] for c in await cc.current_contacts("8613800000001")}
        assert ids == {"e1", "e2"}
        assert (await cc.ledger.query(contact_id="e1"))[0]["reason"] == "late"


async def test_duplicate_contact_id_counts_once(open_backend) -> None:
    """Deciding the same contact_id twice returns the same reservation, counted once."""
    async with open_backend({"caps": {"sms_day": CAPS["sms_day"]}}) as cc:
        a = await cc.decide(req(contact_id="same"))
        b = await cc.decide(req(contact_id="same"))
        assert a.allowed and b.allowed and b.reason == "duplicate"
        assert len(await cc.current_contacts("8613800000001")) == 1


async def test_control_group_and_check_reserve_nothing(open_backend) -> None:
    """Control-group requests are recorded as CONTROL and preview checks leave no trace."""
    async with open_backend({"caps": {"sms_day": dict(CAPS["sms_day"], limit=1)}}) as cc:
        c = await cc.decide(req(control_group=True, contact_id="cg"))
        assert c.outcome is Outcome.CONTROL
        p = await cc.check(req(contact_id="pv"))
        assert p.allowed and p.reservation_expires_at is None
        assert cc.open_reservations() == 0
        assert (await cc.decide(req())).allowed
        assert (await cc.check(req())).reason == "cap.channel.day"
        assert (await cc.decide(req(control_group=True))).reason == "cap.channel.day"
        rows = await cc.ledger.query(msisdn="8613800000001")
        assert {r["contact_id"] for r in rows} >= {"cg"} and "pv" not in {
            r["contact_id"] for r in rows
        }


async def test_passive_channel_not_counted(open_backend) -> None:
    """A passive channel contact is allowed without counting against caps."""
    async with open_backend(
        {
            "passive_channels": ["crm"],
            "caps": {"all": {"scope": "all_channels", "window": "day", "limit": 1}},
        }
    ) as cc:
        for _ in range(3):
            assert (await cc.decide(req(channel="crm"))).allowed
        assert (await cc.decide(req())).allowed
        assert (await cc.decide(req(channel="crm"))).allowed
        assert (await cc.decide(req(channel="ivr"))).reason == "cap.all_channels.day"


async def test_decide_many_matches_sequential_decide(open_backend) -> None:
    """decide_many gives the answers that decide would give one by one, in order."""
    async with open_backend({"caps": {"sms_day": CAPS["sms_day"]}}) as cc:
        batch = [req(m) for m in ("861", "862", "861", "861", "862")]
        out = await cc.decide_many(batch)
        assert [d.outcome.value for d in out] == [
            "allowed",
            "allowed",
            "allowed",
            "suppressed",
            "allowed",
        ]
        assert [d.request.contact_id for d in out] == [r.contact_id for r in batch]


async def test_late_commit_counts_but_commit_after_release_does_not(open_backend, clock) -> None:
    """A message sent after its reservation expired counts; one released (withdrawn) does not."""
    async with open_backend(
        {"reservation_timeout": "60s", "caps": {"sms_day": dict(CAPS["sms_day"], limit=2)}}
    ) as cc:
        await cc.decide(req(contact_id="late"))
        await cc.decide(req(contact_id="gone"))
        assert await cc.release("gone", "preempted")
        await cc.commit("gone")  # refused: it was withdrawn
        clock.advance(30)
        await cc.commit("late")  # within its timeout
        ids = {c["contact_id"] for c in await cc.current_contacts("8613800000001")}
        assert ids == {"late"}


async def test_list_created_after_first_decisions_applies(open_backend) -> None:
    """A list that did not exist when a (channel, class) was first decided is still checked."""
    async with open_backend() as cc:
        assert (await cc.decide(req("866"))).allowed
        await cc.lists.add("opt_out_class", "866", scope="marketing")
        assert (await cc.decide(req("866"))).reason == "dnd.opt_out_class"
        await cc.lists.replace("opt_out_class", [], scope="marketing")
        assert (await cc.decide(req("866"))).allowed


async def test_blacklist_exemption_is_ignored_even_if_configured(tmp_path) -> None:
    """A config built by hand that exempts a class from the blacklist is not obeyed."""
    from gateway.contact.config import ContactConfig
    from gateway.contact.sqlite_backend import open_sqlite_contact_control

    config = ContactConfig(exemptions={"service": frozenset({"blacklist", "global_opt_out"})})
    async with open_sqlite_contact_control(config, tmp_path / "x.sqlite") as cc:
        await cc.lists.add("blacklist", "867")
        await cc.lists.add("global_opt_out", "868")
        assert (await cc.decide(req("867", campaign_class="service"))).reason == "dnd.blacklist"
        assert (
            await cc.decide(req("868", campaign_class="service"))
        ).reason == "dnd.global_opt_out"


async def test_unknown_outcome_keeps_counting_after_the_timeout(open_backend, clock) -> None:
    """A message whose submit answer was lost (unknown: it may have been sent) counts as a contact."""
    async with open_backend(
        {"reservation_timeout": "60s", "caps": {"sms_day": dict(CAPS["sms_day"], limit=1)}}
    ) as cc:
        assert (await cc.decide(req(contact_id="u1"))).allowed
        await cc.reconcile(
            Delivery(contact_id="u1", channel="sms", state=DeliveryState.UNKNOWN, at=0)
        )
        clock.advance(61)
        assert (await cc.decide(req(contact_id="u2"))).reason == "cap.channel.day"
        assert [c["state"] for c in await cc.current_contacts("8613800000001")] == ["committed"]


async def test_passive_contact_not_counted_after_restart(open_sqlite) -> None:
    """A passive-channel contact decided before a restart and reported sent after it still counts nothing."""
    table = {
        "passive_channels": ["crm"],
        "caps": {"all": {"scope": "all_channels", "window": "day", "limit": 1}},
    }
    async with open_sqlite(table) as cc:
        assert (await cc.decide(req(channel="crm", contact_id="p1"))).allowed
    async with open_sqlite(table) as cc:
        assert cc.open_reservations() == 0
        await cc.commit("p1")
        assert (await cc.decide(req(contact_id="p2"))).allowed


async def test_a_failing_observer_does_not_fail_the_decision(open_backend) -> None:
    """An observer of recorded decisions that raises is logged; decide still returns its durable answer."""

    def observer(decision) -> None:
        raise RuntimeError("observer bug")

    async with open_backend({"caps": {"sms_day": dict(CAPS["sms_day"], limit=1)}}) as cc:
        cc.on_recorded = observer
        assert (await cc.decide(req(contact_id="o1"))).allowed
        assert [d.reason for d in await cc.decide_many([req(), req("862")])] == [
            "cap.channel.day",
            None,
        ]
