"""The cap plans an engine keeps across batches (calendar windows until the local day changes,
rolling windows recomputed per instant) are the plans a fresh engine builds at that instant:
across midnight, week and month boundaries, in a timezone with DST."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contact.config import parse_contact_config
from gateway.contact.engine import Engine
from gateway.model import ContactRequest

CONFIG = parse_contact_config(
    {
        "timezone": "Europe/Berlin",
        "caps": {
            "sms_day": {"scope": "channel", "channel": "sms", "window": "day", "limit": 1},
            "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
            "camp_month": {"scope": "campaign", "window": "month", "limit": 2},
            "any_36h": {"scope": "all_channels", "window": "36h", "limit": 4},
            "camp_life": {"scope": "campaign", "window": "lifetime", "limit": 5},
        },
        "cooldowns": {"telemarketing": "60d"},
    }
)
# around the end of March 2026 (Berlin: DST starts on the 29th, a Sunday; April begins)
START = 1_774_562_400.0  # 2026-03-26 22:00 UTC


def fields(checks) -> list[tuple]:
    return [(c.kind, c.value, c.since, c.limit, c.reason, c.rule, c.window) for c in checks]


request = st.builds(
    lambda ch, camp, cls: ContactRequest(
        contact_id="x",
        msisdn="8613800000001",
        campaign_id=camp,
        channel=ch,
        campaign_class=cls,
    ),
    st.sampled_from(["sms", "mms", "ivr"]),
    st.sampled_from(["c1", "c2"]),
    st.sampled_from(["marketing", "telemarketing"]),
)
steps = st.lists(
    st.tuples(st.floats(0, 40_000, allow_nan=False), st.lists(request, min_size=1, max_size=4)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_kept_plans_are_what_a_fresh_engine_builds(steps) -> None:
    engine = Engine(CONFIG, lists=None)
    now = START
    for advance, requests in steps:
        now += advance  # up to 11 hours at a time: crosses days, the week and the month
        for r in requests:
            assert fields(engine.plan(r, now)) == fields(Engine(CONFIG, lists=None).plan(r, now))
