"""The call and enrichment conditions of the trigger language, through the real pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.enrich import Enrichment, load_segments, load_tac
from gateway.model import EventKind as K
from gateway.model import SignalEvent
from tests.fakes.campaign_fakes import campaign_toml, make_pipeline

ETC = Path(__file__).resolve().parents[3] / "etc" / "enrich"
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp()
IMSI1, IMSI2, IMSI3, IMSI4 = (f"46000123456780{i}" for i in range(1, 5))
# Subscribers without a profile (visitors): found only by the event's MSISDN
SH_MOBILE, HEBEI_MOBILE, BJ_MOBILE = "8613921001234", "8613931101234", "8613901001234"
N95, NOKIA_1110, UNKNOWN_TAC = "356938031234567", "352906111234567", "999999991234567"


def enrichment() -> Enrichment:
    return Enrichment(
        segments=load_segments(ETC / "segments.csv"),
        tac=load_tac(ETC / "tac.csv"),
        local_province="beijing",
        local_city="beijing",
    )


async def pipeline(tmp_path, body: str, *, enrich: Enrichment | None = None):
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)})
    p.enrichment = enrich if enrich is not None else enrichment()
    return p


def ev(kind, ts=T0, imsi=IMSI1, **kw) -> SignalEvent:
    return SignalEvent(kind=kind, timestamp=ts, imsi=imsi, **kw)


def who(p, events) -> list[str]:
    return [r.msisdn for r in p.match_batch(events)]


REJECTED_THREE = """[trigger]
events = ["call_end"]
[[trigger.conditions]]
type = "direction"
values = ["mt"]
[[trigger.conditions]]
type = "outcome"
values = ["rejected"]
[[trigger.conditions]]
type = "count"
at_least = 3
within = "1h"
"""


async def test_three_rejected_incoming_calls_in_an_hour(tmp_path):
    """Only mt calls with outcome rejected count; the third within the hour fires."""
    p = await pipeline(tmp_path, REJECTED_THREE)

    def end(minute, direction="mt", outcome="rejected", imsi=IMSI1):
        return ev(K.CALL_END, T0 + minute * 60, imsi, direction=direction, outcome=outcome)

    assert who(p, [end(0), end(10), end(15, outcome="answered"), end(20, direction="mo")]) == []
    assert who(p, [end(30)]) == ["8613800000001"]  # 3rd rejected mt call within the hour
    # another subscriber: three rejections spread over more than an hour never fire
    assert who(p, [end(0, imsi=IMSI2), end(40, imsi=IMSI2), end(70, imsi=IMSI2)]) == []
    assert who(p, [end(75, imsi=IMSI2)]) == ["8613800000002"]  # 40, 70, 75: within the hour


async def test_often_switched_off(tmp_path):
    """A count of power_off events in a window: "switched off 3 times in a week"."""
    body = """[trigger]
events = ["power_off"]
[[trigger.conditions]]
type = "count"
at_least = 3
within = "7d"
"""
    p = await pipeline(tmp_path, body)
    day = 86400
    assert (
        who(p, [ev(K.POWER_OFF, T0), ev(K.POWER_ON, T0 + 1), ev(K.POWER_OFF, T0 + 2 * day)]) == []
    )
    assert who(p, [ev(K.POWER_OFF, T0 + 8 * day)]) == []  # the first one left the window
    assert who(p, [ev(K.POWER_OFF, T0 + 8 * day + 60)]) == ["8613800000001"]


async def test_talk_time(tmp_path):
    """talk_time bounds the call_end duration; a call_end without one never matches."""
    body = """[trigger]
events = ["call_end"]
[[trigger.conditions]]
type = "talk_time"
at_least = "1m"
at_most = "10m"
"""
    p = await pipeline(tmp_path, body)
    events = [
        ev(K.CALL_END, imsi=IMSI1, duration=59.0),
        ev(K.CALL_END, imsi=IMSI2, duration=60.0),
        ev(K.CALL_END, imsi=IMSI3, duration=601.0),
        ev(K.CALL_END, imsi=IMSI4),
    ]
    assert who(p, events) == ["8613800000002"]


async def test_visitor_by_number_segment(tmp_path):
    """A subscriber whose number segment is of another province is a visitor; local and
    unknown segments are not; scope city also counts another city of the province."""
    p = await pipeline(
        tmp_path, '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "visitor"\n'
    )
    events = [
        ev(K.POWER_ON, imsi="460009999999991", msisdn=SH_MOBILE),
        ev(K.POWER_ON, imsi="460009999999992", msisdn=BJ_MOBILE),
        ev(K.POWER_ON, imsi="460009999999993", msisdn="8613999999999"),  # segment unknown
        ev(K.POWER_ON, imsi=IMSI1),  # profile 8613800000001: segment 1380000, beijing
    ]
    assert who(p, events) == [SH_MOBILE]
    enrich = enrichment()
    enrich.local_province, enrich.local_city = "hebei", "shijiazhuang"
    body = '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "visitor"\nscope = "city"\n'
    p = await pipeline(tmp_path / "city", body, enrich=enrich)
    baoding = "8613931201234"
    assert who(
        p,
        [
            ev(K.POWER_ON, imsi="4600099", msisdn=baoding),
            ev(K.POWER_ON, imsi="4600098", msisdn=HEBEI_MOBILE),
        ],
    ) == [baoding]


async def test_visitor_without_tables_never_holds(tmp_path):
    """With no segments loaded nobody is a visitor (the pipeline never guesses)."""
    p = await pipeline(
        tmp_path,
        '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "visitor"\n',
        enrich=Enrichment(local_province="beijing"),
    )
    assert who(p, [ev(K.POWER_ON, imsi="4600099", msisdn=SH_MOBILE)]) == []


async def test_home_and_peer_region(tmp_path):
    """home_region on the subscriber's segment, peer_region on the other party's number
    (mobile segment or fixed-line area code), negate for "not in"."""
    body = """[trigger]
events = ["call_start", "mt_sms"]
[[trigger.conditions]]
type = "peer_region"
provinces = ["Shanghai"]
cities = ["shenzhen"]
[[trigger.conditions]]
type = "home_region"
provinces = ["beijing"]
"""
    p = await pipeline(tmp_path, body)
    events = [
        ev(K.CALL_START, imsi=IMSI1, peer="13921001234"),
        ev(K.MT_SMS, imsi=IMSI2, peer="+8613807551234"),  # originator in shenzhen
        ev(K.CALL_START, imsi=IMSI3, peer="01065528888"),  # beijing fixed line
        ev(K.CALL_START, imsi="4600099", msisdn=SH_MOBILE, peer="13921001234"),  # home shanghai
    ]
    assert who(p, events) == ["8613800000001", "8613800000002"]
    body = '[trigger]\nevents = ["call_start"]\n[[trigger.conditions]]\ntype = "peer_region"\nprovinces = ["beijing"]\nnegate = true\n'
    p = await pipeline(tmp_path / "neg", body)
    events = [
        ev(K.CALL_START, imsi=IMSI1, peer="13921001234"),
        ev(K.CALL_START, imsi=IMSI2, peer="13901001234"),
        ev(K.CALL_START, imsi=IMSI3, peer="12580"),  # no region: neither in nor out
    ]
    assert who(p, events) == ["8613800000001"]


LONG_DISTANCE = """[trigger]
events = ["call_end"]
[[trigger.conditions]]
type = "long_distance"
"""


async def test_long_distance_call_end_reads_the_call_start_number(tmp_path):
    """A call_end without a number is long distance when its call_start called another city
    (mobile, fixed line, with a carrier prefix); local, service and mt calls are not."""
    p = await pipeline(tmp_path, LONG_DISTANCE)
    calls = [
        (IMSI1, "13921001234", "mo"),  # shanghai mobile
        (IMSI2, "12593075512345678", None),  # shenzhen fixed line through 12593
        (IMSI3, "13901001234", "mo"),  # beijing: local
        (IMSI4, "13921001234", "mt"),  # incoming from shanghai: not a long-distance call
    ]
    starts = [ev(K.CALL_START, T0, imsi, peer=peer, direction=d) for imsi, peer, d in calls]
    ends = [ev(K.CALL_END, T0 + 90, imsi, direction=d, duration=90.0) for imsi, _, d in calls]
    assert who(p, starts) == []
    assert who(p, ends) == ["8613800000001", "8613800000002"]
    # a call_end with the number on it (XDR records) needs no call_start; service numbers never
    events = [
        ev(K.CALL_END, T0 + 200, "4600099", msisdn=BJ_MOBILE, peer="02112345678"),
        ev(K.CALL_END, T0 + 200, "4600098", msisdn=BJ_MOBILE, peer="12580"),
    ]
    assert who(p, events) == [BJ_MOBILE]


async def test_long_distance_scope_province(tmp_path):
    """scope = "province": another city of the local province is not long distance."""
    enrich = enrichment()
    enrich.local_province, enrich.local_city = "hebei", "shijiazhuang"
    p = await pipeline(tmp_path, LONG_DISTANCE + 'scope = "province"\n', enrich=enrich)
    events = [
        ev(K.CALL_END, imsi=IMSI1, peer="13931201234"),  # baoding, hebei
        ev(K.CALL_END, imsi=IMSI2, peer="13921001234"),  # shanghai
    ]
    assert who(p, events) == ["8613800000002"]
    p = await pipeline(tmp_path / "city", LONG_DISTANCE, enrich=enrich)
    assert who(p, events) == ["8613800000001", "8613800000002"]


CAPABILITY_MMS = """[trigger]
events = ["handset_change", "power_on"]
[[trigger.conditions]]
type = "capability"
name = "mms"
"""


async def test_new_mms_handset_from_the_imei_alone(tmp_path):
    """The TAC of the new IMEI decides, whatever BOSS says: subscriber 3 has no capabilities
    in BOSS but a new N95; subscriber 1 has mms in BOSS but a new Nokia 1110; an unknown
    subscriber needs no profile at all."""
    p = await pipeline(tmp_path, CAPABILITY_MMS)
    events = [
        ev(K.HANDSET_CHANGE, imsi=IMSI3, imei=N95),
        ev(K.HANDSET_CHANGE, imsi=IMSI1, imei=NOKIA_1110),
        ev(K.HANDSET_CHANGE, imsi="460009999999991", msisdn=SH_MOBILE, imei=N95),
        ev(K.HANDSET_CHANGE, imsi="460009999999992", msisdn=BJ_MOBILE, imei=NOKIA_1110),
    ]
    assert who(p, events) == ["8613800000003", SH_MOBILE]


async def test_capability_uses_the_handset_seen_last_then_boss(tmp_path):
    """An event without IMEI uses the IMEI seen last (profile index or the bounded state of
    unknown subscribers); an unknown TAC or no IMEI falls back to the BOSS capabilities."""
    p = await pipeline(tmp_path, CAPABILITY_MMS)
    seen = [
        ev(K.LOCATION_UPDATE, T0, IMSI3, imei=N95),
        ev(K.LOCATION_UPDATE, T0, IMSI1, imei=NOKIA_1110),
        ev(K.LOCATION_UPDATE, T0, IMSI4, imei=UNKNOWN_TAC),  # BOSS: mms
        ev(K.LOCATION_UPDATE, T0, "460009999999991", msisdn=SH_MOBILE, imei=N95),
    ]
    assert who(p, seen) == []
    later = [
        ev(K.POWER_ON, T0 + 60, IMSI1),
        ev(K.POWER_ON, T0 + 60, IMSI2),  # no IMEI seen, BOSS: wap only
        ev(K.POWER_ON, T0 + 60, IMSI3),
        ev(K.POWER_ON, T0 + 60, IMSI4),
        ev(K.POWER_ON, T0 + 60, "460009999999991", msisdn=SH_MOBILE),
    ]
    assert who(p, later) == ["8613800000003", "8613800000004", SH_MOBILE]
    assert p.state.statistics()["last_imei"]["entries"] == 1  # only the unknown subscriber


async def test_channel_choice_follows_the_tac(tmp_path):
    """channels = ["mms", "sms"]: MMS for a handset the TAC says supports it, even when BOSS
    says not; SMS for one it says cannot."""
    header = """
id = "{id}"
name = "t"
channels = ["mms", "sms"]
initial_state = "running"
[content.mms]
subject = "hi"
[content.sms]
text = "hi"
"""
    body = '[trigger]\nevents = ["handset_change"]\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body, header=header)})
    p.enrichment = enrichment()

    class Mms:
        requires = frozenset({"mms"})

    p.gateway.channels["mms"] = Mms()
    requests = p.match_batch(
        [
            ev(K.HANDSET_CHANGE, imsi=IMSI3, imei=N95),
            ev(K.HANDSET_CHANGE, imsi=IMSI1, imei=NOKIA_1110),
        ]
    )
    assert [(r.msisdn, r.channel) for r in requests] == [
        ("8613800000003", "mms"),
        ("8613800000001", "sms"),
    ]


async def test_template_fields_from_the_tables(tmp_path):
    """Content templates can name the home and peer region and the handset."""
    header = """
id = "{id}"
name = "t"
channels = ["sms"]
initial_state = "running"
[content.sms]
text = "{{home_city|?}}>{{peer_city|?}} {{handset_brand|?}} {{handset_model|?}}"
"""
    body = '[trigger]\nevents = ["call_end"]\n'
    p = await make_pipeline(tmp_path, {"c.toml": campaign_toml(body, header=header)})
    p.enrichment = enrichment()
    requests = p.match_batch(
        [
            ev(
                K.CALL_START, T0, "460009999999991", msisdn=SH_MOBILE, imei=N95, peer="075512345678"
            ),
            ev(K.CALL_END, T0 + 5, "460009999999991", msisdn=SH_MOBILE),
            ev(K.CALL_END, T0 + 5, IMSI2),
        ]
    )
    assert [r.content["text"] for r in requests] == ["shanghai>shenzhen nokia n95", "beijing>? ? ?"]


async def test_service_code_of_ussd_and_ss_change(tmp_path):
    """service_code holds for a USSD string or an SS code listed or with a listed prefix."""
    body = """[trigger]
events = ["ussd", "ss_change"]
[[trigger.conditions]]
type = "service_code"
codes = ["*139#", "cfu"]
prefixes = ["*100"]
"""
    p = await pipeline(tmp_path, body)
    events = [
        ev(K.USSD, imsi=IMSI1, service_code="*139#"),
        ev(K.USSD, imsi=IMSI2, service_code="*100*1#"),
        ev(K.SS_CHANGE, imsi=IMSI3, service_code="cfu", ss_operation="register"),
        ev(K.USSD, imsi=IMSI4, service_code="*138#"),
        ev(K.USSD, imsi=IMSI4, ts=T0 + 1),
    ]
    assert who(p, events) == ["8613800000001", "8613800000002", "8613800000003"]
