"""Preview over a real pcap capture, decoded by the signaling plugin's gateway_event_readers
reader: the figures match what the synthetic A-interface scenario put in the capture."""

from __future__ import annotations

from collections import Counter

from adapters.sigtran.scenario import TRANSPORT_LINKTYPE, Scenario, frames, write_pcap
from plugins.signaling import pcap_dir
from tests.fakes.campaign_fakes import campaign_toml
from tests.gateway.campaigns.test_plugin_preview import IMSI, running_gateway

HEADER = 'id = "{id}"\nname = "attach or move"\nchannels = ["sms"]\n[content.sms]\ntext = "hi {{brand}}"\n'
BODY = '[trigger]\nevents = ["power_on", "location_update"]\n'


async def test_preview_on_a_known_capture(tmp_path):
    """Events matched, distinct subscribers, would-allow and suppressions equal the scenario's."""
    scenario = Scenario(5, imsis=IMSI, cells=[(4101, 1001), (4102, 5)]).run(80)
    capture = tmp_path / "a.pcap"
    with capture.open("wb") as f:
        write_pcap(f, TRANSPORT_LINKTYPE["m3ua"], frames(scenario.messages, "m3ua"))
    wanted = Counter(
        imsi for kind, imsi in scenario.expected if kind in ("power_on", "location_update")
    )
    assert wanted, "the scenario produced no attach or location update"

    async with running_gateway(tmp_path, extra_plugins=[pcap_dir]) as (gw, _, commands):
        (tmp_path / "campaigns" / "c.toml").write_text(
            campaign_toml(BODY, id="moves", header=HEADER)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        await gw.contact_control.lists.add("blacklist", "8613800000002")
        data = (await commands["preview"](["moves", "--capture", str(capture)])).data

    blocked = wanted.get(IMSI[1], 0)
    assert data["events_matched"] == sum(wanted.values())
    assert data["distinct_subscribers"] == len(wanted)
    assert data["would_allow"] == sum(wanted.values()) - blocked
    assert data["suppressed_by_reason"] == ({"dnd.blacklist": blocked} if blocked else {})
    assert data["events_read"] > data["events_matched"] and data["events_bad"] == 0
