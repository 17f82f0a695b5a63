"""Classes exempt from caps (``[contact.exemptions] service = { lists = [...], caps = true }``).

The SMS reminder to an approver is a ``service`` contact: it must never use up a subscriber's
marketing cap, and no marketing contact may slip past a cap because service contacts exist.
"""

from __future__ import annotations

import pytest
from contact_helpers import req
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.contact.config import parse_contact_config
from gateway.errors import ConfigError
from gateway.model import Outcome

SUBSCRIBER = "8613900000009"
CONFIG = {
    "caps": {
        "chan_day": {"scope": "channel", "window": "day", "limit": 2},
        "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
    },
    "exemptions": {
        "service": {"lists": ["greylist"], "caps": True},
        "notice": {"lists": ["greylist"]},  # lists only: still capped
    },
}
CLASSES = ["service", "marketing", "notice"]
CHANNELS = ["sms", "mms"]


def test_table_form_parses_lists_and_caps() -> None:
    """The table form sets both the list exemptions and the cap exemption; the list form none."""
    config = parse_contact_config(
        CONFIG | {"exemptions": CONFIG["exemptions"] | {"x": ["greylist"]}}
    )
    assert config.cap_exempt_classes == frozenset({"service"})
    assert config.exemptions["service"] == frozenset({"greylist"})
    assert config.exemptions["notice"] == frozenset({"greylist"})
    assert config.exemptions["x"] == frozenset({"greylist"})


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"exemptions": {"service": {"caps": True, "lists": ["blacklist"]}}}, "service"),
        ({"exemptions": {"service": {"caps": True, "cap": True}}}, "service.cap"),
        ({"exemptions": {"service": {"caps": "yes"}}}, "service.caps"),
        (
            {
                "exemptions": {"service": {"caps": True}},
                "caps": {"s": {"scope": "channel", "limit": 1, "campaign_class": "service"}},
            },
            "caps.s.campaign_class",
        ),
        (
            {"exemptions": {"service": {"caps": True}}, "cooldowns": {"service": "1d"}},
            "cooldowns.service",
        ),
    ],
)
def test_bad_exemption_tables_are_refused(table: dict, key: str) -> None:
    """Never-exempt lists, unknown keys, a non-boolean, and a cap or cooldown that could never apply."""
    with pytest.raises(ConfigError) as info:
        parse_contact_config(table)
    assert any(p.key.endswith(key) for p in info.value.problems), info.value.problems


async def test_service_reminder_does_not_consume_the_sms_cap(open_sqlite) -> None:
    """Three service reminders, then the one marketing SMS of the day is still allowed."""
    table = {
        "caps": {"sms_day": {"scope": "channel", "channel": "sms", "limit": 1}},
        "exemptions": {"service": {"caps": True}},
    }
    async with open_sqlite(table) as cc:
        for _ in range(3):
            d = await cc.decide(req(SUBSCRIBER, campaign="approval", campaign_class="service"))
            assert d.outcome is Outcome.ALLOWED
            await cc.commit(d.request.contact_id)
        first = await cc.decide(req(SUBSCRIBER, campaign="m1", campaign_class="marketing"))
        second = await cc.decide(req(SUBSCRIBER, campaign="m2", campaign_class="marketing"))
    assert first.outcome is Outcome.ALLOWED
    assert second.outcome is Outcome.SUPPRESSED


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, len(CLASSES) - 1), st.integers(0, len(CHANNELS) - 1)),
        min_size=1,
        max_size=14,
    )
)
async def test_service_never_counts_and_marketing_never_bypasses(open_backend, ops) -> None:
    """Any interleaving: service always allowed and never counted; the rest follow the caps exactly."""
    async with open_backend(CONFIG, fresh=True) as cc:
        per_channel = dict.fromkeys(CHANNELS, 0)
        total = 0
        for i, (cls_i, ch_i) in enumerate(ops):
            cls, channel = CLASSES[cls_i], CHANNELS[ch_i]
            d = await cc.decide(
                req(SUBSCRIBER, campaign=f"c{i}", channel=channel, campaign_class=cls)
            )
            if cls == "service":
                assert d.outcome is Outcome.ALLOWED
                continue
            expect = per_channel[channel] < 2 and total < 3
            assert (d.outcome is Outcome.ALLOWED) is expect, (i, cls, channel, d.reason)
            if expect:
                per_channel[channel] += 1
                total += 1
                await cc.commit(d.request.contact_id)
        live = await cc.current_contacts(SUBSCRIBER)
        assert all(c["campaign_class"] != "service" for c in live)
        assert len(live) == total
