"""The pipeline hands contact control (and the SMS channel) E.164 destinations only."""

from __future__ import annotations

from gateway.model import ContactRequest, SignalEvent
from gateway.model import EventKind as K
from tests.fakes.campaign_fakes import campaign_toml, make_pipeline

T0 = 1_772_000_000.0


async def test_event_msisdn_and_plugin_matcher_numbers_become_e164(tmp_path):
    """A national event MSISDN and a plugin's national number both reach decisions as 86..."""
    p = await make_pipeline(
        tmp_path, {"c.toml": campaign_toml('[trigger]\nevents = ["power_on"]\n')}
    )

    class National:
        name = "national"

        def match(self, event, subscriber):
            return [
                ContactRequest(
                    contact_id="plug-1", msisdn="0135 0000 0009", campaign_id="p", channel="sms"
                )
            ]

    p.gateway.matchers = [National()]
    event = SignalEvent(
        kind=K.POWER_ON, timestamp=T0, imsi="460009999999999", msisdn="013500000008"
    )
    requests = p.match_batch([event])
    assert sorted(r.msisdn for r in requests) == ["8613500000008", "8613500000009"]


async def test_plugin_request_with_unusable_number_is_refused(tmp_path):
    """A plugin request whose number cannot be normalised never reaches contact control."""
    p = await make_pipeline(
        tmp_path, {"c.toml": campaign_toml('[trigger]\nevents = ["handover"]\n')}
    )

    class Bad:
        name = "bad"

        def match(self, event, subscriber):
            return [
                ContactRequest(contact_id="b", msisdn="\uff11" * 11, campaign_id="p", channel="sms")
            ]

    p.gateway.matchers = [Bad()]
    event = SignalEvent(kind=K.POWER_ON, timestamp=T0, imsi="460009999999999")
    assert p.match_batch([event]) == []
