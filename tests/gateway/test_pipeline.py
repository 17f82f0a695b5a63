"""The pipeline: enrich -> match -> contact control -> outbox, with policy and control group."""

from __future__ import annotations

import attrs

from gateway.model import EventKind as K
from gateway.model import Outcome, SignalEvent
from gateway.pipeline import contact_id_for, in_control_group
from tests.fakes.campaign_fakes import FakeContactControl, campaign_toml, make_pipeline

IMSI1, IMSI2, IMSI3, IMSI4 = (f"46000123456780{i}" for i in range(1, 5))
T0 = 1_772_000_000.0
POWER_ON = '[trigger]\nevents = ["power_on"]\n'


@attrs.define
class DeclaredChannel:
    """A registered channel object reduced to its declaration (what the pipeline reads)."""

    name: str
    requires: frozenset[str] = frozenset()


def ev(kind=K.POWER_ON, ts=T0, imsi=IMSI1, **kw) -> SignalEvent:
    return SignalEvent(kind=kind, timestamp=ts, imsi=imsi, **kw)


async def test_allowed_to_outbox_deferred_and_suppressed_counted(tmp_path):
    """ALLOWED goes to enqueue_many, DEFERRED to defer, SUPPRESSED only to the counters."""
    control = FakeContactControl(
        suppress={"8613800000002": "dnd.blacklist"}, defer=["8613800000003"]
    )
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON)}, control=control)
    await p.send([ev(imsi=i) for i in (IMSI1, IMSI2, IMSI3)])
    outbox = p.gateway.outbox
    assert [d.request.msisdn for d in outbox.queued.values()] == ["8613800000001"]
    assert [r.msisdn for r, _ in outbox.deferred] == ["8613800000003"]
    counts = p.campaigns.counts["c1"]
    assert (
        counts["matched"] == 3
        and counts["allowed"] == 1
        and counts["suppressed"] == 1
        and counts["deferred"] == 1
    )


async def test_request_fields_and_rendered_content(tmp_path):
    """The request carries campaign class/priority, the trigger and content with profile fields."""
    header = 'id = "{id}"\nname = "n"\nclass = "care"\npriority = 7\nchannels = ["sms"]\ninitial_state = "running"\ndefer_if_quiet = true\n[content.sms]\ntext = "Hi {{brand|friend}}, called {{peer}} from {{cell}} ({{county|?}})"\n'
    body = '[trigger]\nevents = ["call_end"]\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body, header=header)})
    [request] = p.match_batch([ev(K.CALL_END, peer="12580", lac=4101, ci=7)])
    assert request.content == {"text": "Hi gotone, called 12580 from 4101-7 (?)"}
    assert (request.campaign_class, request.priority, request.trigger, request.defer_if_quiet) == (
        "care",
        7,
        "call_end",
        True,
    )
    assert request.realtime and request.channel == "sms"
    [unknown] = p.match_batch(
        [ev(K.CALL_END, imsi="460009999999999", msisdn="+8613899999999", peer="1")]
    )
    assert unknown.msisdn == "8613899999999" and unknown.content["text"].startswith(
        "Hi friend, called 1 from  "
    )


async def test_once_per_policy_and_idempotent_contact_ids(tmp_path):
    """At most once per subscriber per policy period; a replayed event gives the same contact id."""
    body = '[policy]\nonce_per = "1d"\n' + POWER_ON
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)})
    first = p.match_batch([ev(), ev(ts=T0 + 3600)])
    assert len(first) == 1
    assert p.campaigns.counts["c1"]["repeat"] == 1
    later = p.match_batch([ev(ts=T0 + 86400 + 1)])
    assert len(later) == 1 and later[0].contact_id != first[0].contact_id
    # a restarted gateway (fresh state) replaying the first event produces the same id
    p2 = await make_pipeline(tmp_path / "again", {"c.toml": campaign_toml(body)})
    assert p2.match_batch([ev()])[0].contact_id == first[0].contact_id
    assert contact_id_for("c1", "1", "power_on", 5) == contact_id_for("c1", "1", "power_on", 5)


def test_control_group_is_stable_and_proportional():
    """The same subscriber is always in or out; about the configured share is held out."""
    numbers = [str(8613800000000 + i) for i in range(20_000)]
    first = [in_control_group("camp", n, 5.0) for n in numbers]
    assert first == [in_control_group("camp", n, 5.0) for n in numbers]
    share = sum(first) / len(numbers)
    assert 0.04 < share < 0.06
    other = [in_control_group("other", n, 5.0) for n in numbers]
    assert other != first  # a different campaign holds out different subscribers
    assert not any(in_control_group("camp", n, 0.0) for n in numbers[:100])


async def test_control_group_requests_are_recorded_not_sent(tmp_path):
    """Control-group matches reach contact control flagged, come back CONTROL and are not queued."""
    header = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\ncontrol_group_percent = 100.0\n[content.sms]\ntext = "t"\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON, header=header)})
    decisions = await p.submit(p.match_batch([ev(), ev(imsi=IMSI2)]))
    assert [d.outcome for d in decisions] == [Outcome.CONTROL, Outcome.CONTROL]
    assert all(d.request.control_group for d in decisions)
    assert not p.gateway.outbox.queued
    assert p.campaigns.counts["c1"]["control_group"] == 2


async def test_channel_chosen_by_terminal_capability(tmp_path):
    """MMS goes to MMS-capable terminals; others fall back to the next channel (SMS)."""
    header = 'id = "{id}"\nname = "n"\nchannels = ["mms", "sms"]\ninitial_state = "running"\n[content.mms]\nsubject = "s"\n[content.sms]\ntext = "t"\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON, header=header)})
    p.gateway.channels["mms"] = DeclaredChannel("mms", requires=frozenset({"mms"}))
    requests = p.match_batch([ev(imsi=IMSI1), ev(imsi=IMSI2)])
    assert [(r.msisdn[-1], r.channel, dict(r.content)) for r in requests] == [
        ("1", "mms", {"subject": "s"}),
        ("2", "sms", {"text": "t"}),
    ]


async def test_handset_requirement_comes_from_the_channel_declaration(tmp_path):
    """No built-in table: a channel that requires nothing is chosen for every handset."""
    header = 'id = "{id}"\nname = "n"\nchannels = ["mms", "sms"]\ninitial_state = "running"\n[content.mms]\nsubject = "s"\n[content.sms]\ntext = "t"\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON, header=header)})
    p.gateway.channels["mms"] = DeclaredChannel("mms")  # requires nothing
    requests = p.match_batch([ev(imsi=IMSI1), ev(imsi=IMSI2)])
    assert [r.channel for r in requests] == ["mms", "mms"]
    p = await make_pipeline(tmp_path / "b", {"c.toml": campaign_toml(POWER_ON, header=header)})
    p.gateway.channels["mms"] = DeclaredChannel("mms", requires=frozenset({"mms", "wap"}))
    requests = p.match_batch([ev(imsi=IMSI1), ev(imsi=IMSI2)])
    assert [r.channel for r in requests] == ["mms", "sms"]  # IMSI2 has wap but not mms


async def test_bad_events_and_backend_failure_never_raise(tmp_path):
    """A broken event is counted and skipped; a failing contact control is logged, not raised."""
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON)})
    broken = attrs.evolve(ev(), imsi=12345)  # not a string: lookup fails
    await p.send([broken, ev(imsi=IMSI2), ev(imsi=None, msisdn=None)])
    assert p.gateway.metrics.counter("pipeline.events_bad").value == 1
    assert len(p.gateway.outbox.queued) == 1
    p.gateway.contact_control.fail = True
    await p.send([ev(imsi=IMSI3)])
    assert p.gateway.metrics.counter("pipeline.decide_failed").value == 1


async def test_learns_profile_attributes_and_plugin_matchers(tmp_path):
    """Events update last cell/IMEI/seen; plugin matchers get the enriched subscriber."""
    p = await make_pipeline(
        tmp_path, {"c.toml": campaign_toml('[trigger]\nevents = ["handover"]\n')}
    )
    seen = []

    class Echo:
        name = "echo"

        def match(self, event, subscriber):
            seen.append(subscriber and subscriber.attributes.get("last_cell"))
            return []

    p.gateway.matchers = [Echo()]
    p.match_batch(
        [
            ev(K.LOCATION_UPDATE, lac=4101, ci=1001, imei="356938035643809"),
            ev(K.POWER_ON, imsi="460009"),
        ]
    )
    view = p.profiles.index.view(0)
    assert (
        view["last_cell"] == "4101-1001"
        and view["last_imei"] == "356938035643809"
        and view["last_seen"] == T0
    )
    assert seen == ["4101-1001", None]


async def test_campaign_outside_schedule_or_not_running_does_not_match(tmp_path):
    """Only running campaigns inside their schedule and send windows produce requests."""
    header = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\n[schedule]\nend = 2020-01-01T00:00:00+00:00\n[content.sms]\ntext = "t"\n'
    windows = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\n[schedule]\nsend_windows = ["08:00-09:00"]\n[content.sms]\ntext = "t"\n'
    pending = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\n[content.sms]\ntext = "t"\n'
    tomls = {
        "a.toml": campaign_toml(POWER_ON, id="ended", header=header),
        "b.toml": campaign_toml(POWER_ON, id="windowed", header=windows),
        "c.toml": campaign_toml(POWER_ON, id="pending", header=pending),
    }
    p = await make_pipeline(tmp_path, tomls)
    assert p.campaigns.get("ended").campaign.state.value == "finished"
    eight_thirty = 1_772_000_000 - 1_772_000_000 % 86400 + 8.5 * 3600
    assert [
        r.campaign_id
        for r in p.match_batch([ev(ts=eight_thirty), ev(ts=eight_thirty + 3 * 3600, imsi=IMSI2)])
    ] == ["windowed"]
    assert p.campaigns.counts["windowed"]["outside_schedule"] == 1


async def test_matching_state_stays_bounded_and_expires(tmp_path):
    """Dwell state never exceeds its capacity, and entries older than the TTL are swept."""
    from gateway.rules.conditions import MatcherState

    profiles = "msisdn,imsi\n" + "".join(
        f"{8613900000000 + i},{460010000000000 + i}\n" for i in range(6000)
    )
    body = '[trigger]\nevents = ["cell_change"]\nareas = ["airport"]\n[[trigger.conditions]]\ntype = "dwell"\nat_least = "30m"\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)}, profiles=profiles)
    p.state = MatcherState(capacity=1000, ttl=3600.0)
    events = [
        ev(K.CELL_CHANGE, ts=T0 + i, imsi=str(460010000000000 + i), lac=4101, ci=1001)
        for i in range(5000)
    ]
    p.match_batch(events)
    assert len(p.state.dwell) == 1000 and p.state.dwell.evicted == 4000
    later = [
        ev(K.CELL_CHANGE, ts=T0 + 8000 + i, imsi=str(460010000000000 + 5000 + i), lac=9, ci=9)
        for i in range(4096)
    ]
    p.match_batch(later)  # a sweep runs every 4096 events: the airport stays are older than the TTL
    assert len(p.state.dwell) == 0 and p.state.dwell.expired == 1000


def test_control_group_membership_is_pinned_across_processes():
    """Membership is a fixed function of campaign and MSISDN (not a per-process salted hash)."""
    numbers = [str(8613800000000 + i) for i in range(40)]
    assert [i for i, n in enumerate(numbers) if in_control_group("camp", n, 5.0)] == [36]
    half = [i for i, n in enumerate(numbers) if in_control_group("camp", n, 50.0)]
    assert half[:10] == [0, 2, 4, 7, 10, 14, 15, 17, 19, 20]


async def test_bad_timestamps_are_counted_and_do_not_touch_state(tmp_path):
    """An event without a usable time (None, NaN, inf) is counted as bad, even last in a batch at
    the expiry sweep, and neither triggers nor erases the once-per-policy state."""
    from gateway.pipeline import EXPIRE_EVERY

    body = '[policy]\nonce_per = "1d"\n' + POWER_ON
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)})
    assert len(p.match_batch([ev()])) == 1
    for bad in (None, float("nan"), float("inf")):
        p._since_expiry = EXPIRE_EVERY
        await p.send([ev(ts=T0 + 10), attrs.evolve(ev(), timestamp=bad)])
    assert p.gateway.metrics.counter("pipeline.events_bad").value == 3
    assert p.match_batch([ev(ts=T0 + 60)]) == []  # still once per day
    assert p.campaigns.counts["c1"]["repeat"] == 4


async def test_once_per_longer_than_state_ttl_still_holds(tmp_path):
    """A policy longer than [campaigns] state_ttl is kept: no second contact inside the period."""
    from gateway.rules import MatcherState

    body = '[policy]\nonce_per = "7d"\n' + POWER_ON
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)})
    p.state = MatcherState(ttl=3600.0)
    assert len(p.match_batch([ev()])) == 1
    p.state.expire(T0 + 2 * 86400)
    assert p.match_batch([ev(ts=T0 + 2 * 86400)]) == []
    assert len(p.match_batch([ev(ts=T0 + 8 * 86400)])) == 1


async def test_cell_field_needs_both_lac_and_ci(tmp_path):
    """{cell} is "LAC-CI" only when both are known (a BSSMAP cell identifier may carry the CI
    alone): otherwise the fallback, never "None-7"."""
    header = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\n[content.sms]\ntext = "at {{cell|?}}"\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(POWER_ON, header=header)})
    [ci_only, both] = p.match_batch([ev(ci=7), ev(imsi=IMSI2, lac=4101, ci=7)])
    assert ci_only.content == {"text": "at ?"} and both.content == {"text": "at 4101-7"}
