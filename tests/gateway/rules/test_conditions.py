"""Each condition type of the trigger language, through the real pipeline matching path."""

from __future__ import annotations

import datetime as dt

from gateway.model import EventKind as K
from gateway.model import SignalEvent
from tests.fakes.campaign_fakes import campaign_toml, make_pipeline

IMSI1, IMSI2, IMSI3, IMSI4 = (f"46000123456780{i}" for i in range(1, 5))
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp()  # a Monday, 10:00 UTC


def ev(kind, ts=T0, imsi=IMSI1, **kw) -> SignalEvent:
    return SignalEvent(kind=kind, timestamp=ts, imsi=imsi, **kw)


def matched(pipeline, events) -> list[str]:
    return [r.msisdn[-1] for r in pipeline.match_batch(events)]


async def one(tmp_path, body: str, **kw):
    return await make_pipeline(tmp_path, {"c.toml": campaign_toml(body)}, **kw)


async def test_event_kind_and_anywhere(tmp_path):
    """A rule without location matches its event kinds anywhere, and no other kind."""
    p = await one(tmp_path, '[trigger]\nevents = ["power_on"]\n')
    assert matched(p, [ev(K.POWER_ON, lac=1, ci=2), ev(K.POWER_OFF, imsi=IMSI2)]) == ["1"]


async def test_cells_lacs_and_named_areas(tmp_path):
    """Locations: cell lists, LAC lists and named areas; events elsewhere do not match."""
    p = await one(
        tmp_path,
        '[trigger]\nevents = ["cell_change"]\ncells = ["4200-7"]\nlacs = [4300]\nareas = ["airport", "station"]\n',
    )
    events = [
        ev(K.CELL_CHANGE, imsi=IMSI1, lac=4200, ci=7),
        ev(K.CELL_CHANGE, imsi=IMSI2, lac=4300, ci=99),
        ev(K.CELL_CHANGE, imsi=IMSI3, lac=4101, ci=1002),
        ev(K.CELL_CHANGE, imsi=IMSI4, lac=4102, ci=5),
        ev(K.CELL_CHANGE, imsi=IMSI1, ts=T0 + 1, lac=4101, ci=1003),
        ev(K.CELL_CHANGE, imsi=IMSI1, ts=T0 + 2, lac=4200, ci=8),
        ev(K.CELL_CHANGE, imsi=IMSI1, ts=T0 + 3),
    ]
    assert matched(p, events) == ["1", "2", "3", "4"]


async def test_time_of_day_wrapping_and_day_of_week(tmp_path):
    """time_of_day (also across midnight, in the configured timezone) and day_of_week."""
    body = """[trigger]
events = ["power_on"]
[[trigger.conditions]]
type = "time_of_day"
between = "22:00-02:00"
[[trigger.conditions]]
type = "day_of_week"
days = ["mon", "tue"]
"""
    p = await one(tmp_path, body, timezone="Asia/Shanghai")  # UTC+8
    late_monday_local = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC).timestamp()  # 23:30 Mon
    sunday_local = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC).timestamp()  # 23:30 Sun
    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC).timestamp()  # 12:00 Mon
    assert matched(
        p,
        [
            ev(K.POWER_ON, late_monday_local),
            ev(K.POWER_ON, sunday_local, IMSI2),
            ev(K.POWER_ON, noon, IMSI3),
        ],
    ) == ["1"]


async def test_profile_predicates(tmp_path):
    """equals, in, not_in, range, has/lacks product, capability and tag on the profile."""
    cases = {
        'type = "profile"\nattribute = "brand"\nequals = "gotone"': ["1", "4"],
        'type = "profile"\nattribute = "region"\nin = ["hebei", "guangdong"]': ["3", "4"],
        'type = "profile"\nattribute = "region"\nnot_in = ["beijing"]': ["3", "4"],
        'type = "profile"\nattribute = "arpu_band"\nrange = [1, 3]': ["1", "2"],
        'type = "profile"\nattribute = "tags"\nin = ["vip", "student"]': ["2", "4"],
        'type = "has_product"\nproduct = "12593"': ["3", "4"],
        'type = "lacks_product"\nproduct = "mms10"': ["2", "3"],
        'type = "capability"\nname = "mms"': ["1", "4"],
        'type = "tag"\nname = "traveller"': ["1"],
    }
    for i, (cond, expected) in enumerate(cases.items()):
        d = tmp_path / str(i)
        d.mkdir()
        p = await one(d, f'[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\n{cond}\n')
        events = [ev(K.POWER_ON, imsi=imsi) for imsi in (IMSI1, IMSI2, IMSI3, IMSI4)]
        events.append(ev(K.POWER_ON, imsi="460009999999999", msisdn="8613899999999"))  # no profile
        assert matched(p, events) == expected, cond


async def test_target_list_membership(tmp_path):
    """in_target_list matches only MSISDNs listed in the campaign's target.list file."""
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "list.txt").write_text("# targets\n8613800000002\n+8613800000004\n")
    body = '[target]\nlist = "list.txt"\n[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "in_target_list"\n'
    p = await one(tmp_path, body)
    assert matched(p, [ev(K.POWER_ON, imsi=i) for i in (IMSI1, IMSI2, IMSI3, IMSI4)]) == ["2", "4"]


async def test_peer_and_cause(tmp_path):
    """peer numbers/prefixes ("call to 12580 ended") and release cause values."""
    body = """[trigger]
events = ["call_end"]
[[trigger.conditions]]
type = "peer"
numbers = ["12580", "10086"]
prefixes = ["1259"]
[[trigger.conditions]]
type = "cause"
values = [16]
"""
    p = await one(tmp_path, body)
    events = [
        ev(K.CALL_END, imsi=IMSI1, peer="12580", cause=16),
        ev(K.CALL_END, imsi=IMSI2, peer="12593001", cause=16),
        ev(K.CALL_END, imsi=IMSI3, peer="12580", cause=17),
        ev(K.CALL_END, imsi=IMSI4, peer="13800000000", cause=16),
        ev(K.CALL_START, imsi=IMSI4, peer="10086", cause=16),
    ]
    assert matched(p, events) == ["1", "2"]


async def test_dwell_in_area_with_gap_expiry_and_leaving(tmp_path):
    """dwell: 30 minutes in the area matches; leaving or a long silence restarts the stay."""
    body = '[trigger]\nevents = ["periodic_update", "cell_change"]\nareas = ["airport"]\n[[trigger.conditions]]\ntype = "dwell"\nat_least = "30m"\nmax_gap = "1h"\n'
    p = await one(tmp_path, body)
    air = {"lac": 4101, "ci": 1001}
    assert matched(p, [ev(K.CELL_CHANGE, T0, **air), ev(K.PERIODIC_UPDATE, T0 + 1200, **air)]) == []
    assert matched(p, [ev(K.PERIODIC_UPDATE, T0 + 1800, **air)]) == ["1"]
    # subscriber 2 leaves for another cell in between: the stay starts again
    assert (
        matched(
            p,
            [ev(K.CELL_CHANGE, T0, IMSI2, **air), ev(K.CELL_CHANGE, T0 + 900, IMSI2, lac=9, ci=9)],
        )
        == []
    )
    assert (
        matched(
            p,
            [
                ev(K.CELL_CHANGE, T0 + 1000, IMSI2, **air),
                ev(K.PERIODIC_UPDATE, T0 + 1900, IMSI2, **air),
            ],
        )
        == []
    )
    assert matched(p, [ev(K.PERIODIC_UPDATE, T0 + 2800, IMSI2, **air)]) == ["2"]
    # subscriber 3: more than max_gap between two sightings is a new stay
    assert (
        matched(
            p, [ev(K.CELL_CHANGE, T0, IMSI3, **air), ev(K.PERIODIC_UPDATE, T0 + 4000, IMSI3, **air)]
        )
        == []
    )


async def test_sequence_switched_on_after_days_off(tmp_path):
    """sequence: power_on matches only 7+ days after this subscriber's power_off."""
    body = '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "sequence"\nafter = "power_off"\ngap_at_least = "7d"\n'
    p = await one(tmp_path, body)
    day = 86400
    assert (
        matched(
            p,
            [ev(K.POWER_OFF, T0), ev(K.POWER_OFF, T0, IMSI2), ev(K.POWER_ON, T0 + 3 * day, IMSI2)],
        )
        == []
    )
    assert matched(p, [ev(K.POWER_ON, T0 + 8 * day), ev(K.POWER_ON, T0 + 8 * day, IMSI3)]) == ["1"]


async def test_silence(tmp_path):
    """silence: nothing seen from the subscriber for the period before this event."""
    body = '[trigger]\nevents = ["power_on", "location_update"]\n[[trigger.conditions]]\ntype = "silence"\nat_least = "2d"\n'
    p = await one(tmp_path, body)
    assert matched(p, [ev(K.LOCATION_UPDATE, T0), ev(K.POWER_ON, T0 + 86400)]) == []
    assert matched(p, [ev(K.POWER_ON, T0 + 4 * 86400)]) == ["1"]


async def test_count_in_window_with_expiry(tmp_path):
    """count: 3 rejected calls within an hour match; older ones fall out of the window."""
    body = """[trigger]
events = ["call_end"]
[[trigger.conditions]]
type = "cause"
values = [21]
[[trigger.conditions]]
type = "count"
at_least = 3
within = "1h"
"""
    p = await one(tmp_path, body)
    rejected = {"cause": 21}
    assert (
        matched(
            p,
            [
                ev(K.CALL_END, T0, **rejected),
                ev(K.CALL_END, T0 + 60, cause=16),
                ev(K.CALL_END, T0 + 120, **rejected),
            ],
        )
        == []
    )
    assert (
        matched(p, [ev(K.CALL_END, T0 + 4000, **rejected), ev(K.CALL_END, T0 + 4100, **rejected)])
        == []
    )
    assert matched(p, [ev(K.CALL_END, T0 + 4200, **rejected)]) == ["1"]


async def test_plugin_condition_type(tmp_path):
    """A condition type from gateway_condition_types is parsed with its keys and tested."""

    class LongCall:
        def __init__(self, seconds):
            self.seconds = seconds

        def test(self, event, subscriber):
            return (event.duration or 0) >= self.seconds and subscriber is not None

    def long_call(table):
        return LongCall(table.duration("at_least"))

    body = '[trigger]\nevents = ["call_end"]\n[[trigger.conditions]]\ntype = "long_call"\nat_least = "5m"\n'
    p = await one(tmp_path, body, plugin_types={"long_call": long_call})
    assert matched(
        p, [ev(K.CALL_END, duration=400.0), ev(K.CALL_END, imsi=IMSI2, duration=20.0)]
    ) == ["1"]


async def test_sequence_call_to_service_number_ended(tmp_path):
    """sequence with peer: a call_end after this subscriber's call_start to 12580 or 10086."""
    body = '[trigger]\nevents = ["call_end"]\n[[trigger.conditions]]\ntype = "sequence"\nafter = "call_start"\npeer = ["12580", "10086"]\ngap_at_most = "2h"\n'
    p = await one(tmp_path, body)
    events = [
        ev(K.CALL_START, T0, IMSI1, peer="12580"),
        ev(K.CALL_START, T0, IMSI2, peer="13800000000"),
        ev(K.CALL_END, T0 + 120, IMSI1),
        ev(K.CALL_END, T0 + 120, IMSI2),
        ev(K.CALL_END, T0 + 120, IMSI3),  # no call start seen
        ev(K.CALL_START, T0, IMSI4, peer="10086"),
        ev(K.CALL_END, T0 + 3 * 3600, IMSI4),  # too long after
    ]
    assert matched(p, events) == ["1"]


async def test_time_of_day_up_to_midnight_written_24_00(tmp_path):
    """A time of day up to 24:00: "00:00-24:00" is the whole day, "22:00-24:00" its last hours."""
    body = '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "time_of_day"\nbetween = "{}"\n'
    late = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC).timestamp()
    noon = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC).timestamp()
    whole = await one(tmp_path / "a", body.format("00:00-24:00"))
    assert matched(whole, [ev(K.POWER_ON, noon), ev(K.POWER_ON, late, IMSI2)]) == ["1", "2"]
    evening = await one(tmp_path / "b", body.format("22:00-24:00"))
    assert matched(evening, [ev(K.POWER_ON, noon), ev(K.POWER_ON, late, IMSI2)]) == ["2"]
