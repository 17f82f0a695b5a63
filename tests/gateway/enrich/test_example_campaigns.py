"""The example campaigns of etc/campaigns/ for the operator's scenes, with the sample tables
of etc/enrich/: events that must trigger them, and events that must not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.enrich import Enrichment, load_segments, load_tac
from gateway.model import EventKind as K
from gateway.model import SignalEvent
from tests.fakes.campaign_fakes import make_pipeline

ROOT = Path(__file__).resolve().parents[3]
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp()
IMSI1, IMSI2, IMSI3, IMSI4 = (f"46000123456780{i}" for i in range(1, 5))
VISITOR_IMSI, SH_MOBILE = "460009999999991", "8613921001234"


async def example(tmp_path, name: str):
    """A pipeline running only etc/campaigns/<name>, with the sample tables (local: beijing)."""
    text = (ROOT / "etc" / "campaigns" / name).read_text(encoding="utf-8")
    p = await make_pipeline(tmp_path, {name: text})
    assert len(p.campaigns.rule_index) == 1, name
    p.enrichment = Enrichment(
        segments=load_segments(ROOT / "etc" / "enrich" / "segments.csv"),
        tac=load_tac(ROOT / "etc" / "enrich" / "tac.csv"),
        local_province="beijing",
        local_city="beijing",
    )
    return p


def ev(kind, ts=T0, imsi=IMSI1, **kw) -> SignalEvent:
    return SignalEvent(kind=kind, timestamp=ts, imsi=imsi, **kw)


def sent(p, events) -> list[tuple[str, str]]:
    return [(r.msisdn, r.content["text"]) for r in p.match_batch(events)]


async def test_missed_calls_three_rejected_incoming_calls(tmp_path):
    """missed_calls.toml: the third rejected incoming call within an hour, once per 30 days."""
    p = await example(tmp_path, "missed_calls.toml")

    def call(minute, imsi=IMSI2, direction="mt", outcome="rejected"):
        return ev(K.CALL_END, T0 + minute * 60, imsi, direction=direction, outcome=outcome)

    not_yet = [
        call(0),
        call(5, outcome="no_answer"),
        call(10, direction="mo"),
        call(20),
        call(25, outcome="answered"),
    ]
    assert sent(p, not_yet) == []
    found = sent(p, [call(30)])
    assert [m for m, _ in found] == ["8613800000002"]
    assert "missed-call" in found[0][1]
    assert sent(p, [call(31), call(32), call(33)]) == []  # once per 30 days


async def test_long_distance_call_ended_offers_12593(tmp_path):
    """long_distance_12593.toml: an answered call to another city, for subscribers without
    12593; local calls, unanswered calls and 12593 holders get nothing."""
    p = await example(tmp_path, "long_distance_12593.toml")
    starts = [
        ev(K.CALL_START, T0, IMSI1, peer="02112345678", direction="mo"),  # shanghai fixed line
        ev(K.CALL_START, T0, IMSI2, peer="13901001234", direction="mo"),  # beijing mobile
        ev(K.CALL_START, T0, IMSI3, peer="13921001234", direction="mo"),  # holds 12593
        ev(
            K.CALL_START,
            T0,
            "460009999999992",
            msisdn="8613901009999",
            peer="13807551234",
            direction="mo",
        ),
    ]
    ends = [
        ev(K.CALL_END, T0 + 300, IMSI1, direction="mo", outcome="answered", duration=300.0),
        ev(K.CALL_END, T0 + 300, IMSI2, direction="mo", outcome="answered", duration=300.0),
        ev(K.CALL_END, T0 + 300, IMSI3, direction="mo", outcome="answered", duration=300.0),
        ev(
            K.CALL_END,
            T0 + 30,
            "460009999999992",
            msisdn="8613901009999",
            direction="mo",
            outcome="no_answer",
        ),
    ]
    assert sent(p, starts) == []
    found = sent(p, ends)
    assert [m for m, _ in found] == ["8613800000001"]
    assert found[0][1].startswith("Calling shanghai?")


async def test_visitor_from_another_province_is_welcomed(tmp_path):
    """visitor_welcome.toml: a Shanghai number switched on in Beijing gets the welcome with its
    home city; local numbers and numbers of unknown segments do not."""
    p = await example(tmp_path, "visitor_welcome.toml")
    events = [
        ev(K.POWER_ON, imsi=VISITOR_IMSI, msisdn=SH_MOBILE, lac=4101, ci=1),
        ev(K.POWER_ON, imsi=IMSI1, lac=4101, ci=1),
        ev(K.LOCATION_UPDATE, imsi="460009999999993", msisdn="8613901001234", lac=4101, ci=1),
        ev(K.LOCATION_UPDATE, imsi="460009999999994", msisdn="8618999999999", lac=4101, ci=1),
        ev(K.CALL_START, imsi="460009999999995", msisdn=SH_MOBILE),  # not a trigger kind
    ]
    assert sent(p, events) == [
        (SH_MOBILE, "Welcome to Beijing from shanghai! Dial 12580 for hotels, tickets and taxis.")
    ]
    assert sent(p, [ev(K.LOCATION_UPDATE, T0 + 3600, VISITOR_IMSI, msisdn=SH_MOBILE)]) == []


async def test_new_mms_capable_handset_by_tac(tmp_path):
    """new_handset_mms.toml: a handset change to a model whose TAC says MMS, for subscribers
    without the MMS package: subscriber 3 (no capabilities in BOSS) with a new N95; not a new
    Nokia 1110, not subscriber 4 (holds mms10), not a subscriber without a profile (the
    lacks_product condition needs one), not an unknown TAC."""
    p = await example(tmp_path, "new_handset_mms.toml")
    events = [
        ev(K.HANDSET_CHANGE, imsi=IMSI3, imei="356938031234567"),
        ev(K.HANDSET_CHANGE, imsi=IMSI2, imei="352906111234567"),
        ev(K.HANDSET_CHANGE, imsi=IMSI4, imei="356938031234567"),
        ev(K.HANDSET_CHANGE, imsi=VISITOR_IMSI, msisdn=SH_MOBILE, imei="868915031234567"),
        ev(
            K.HANDSET_CHANGE, imsi="460009999999996", msisdn="8613901001234", imei="999999991234567"
        ),
    ]
    assert [m for m, _ in sent(p, events)] == ["8613800000003"]


def test_every_example_campaign_loads_with_its_id():
    """The scene examples load without problems next to the other examples."""
    from gateway.campaigns.loader import load_campaign_dir
    from gateway.rules.areas import load_areas

    defs, problems = load_campaign_dir(
        ROOT / "etc" / "campaigns", areas=load_areas(ROOT / "etc" / "areas.toml")
    )
    assert not problems, [str(p) for p in problems]
    assert {"missed-calls", "long-distance-12593", "visitor-welcome", "handset-mms"} <= {
        d.id for d in defs
    }
