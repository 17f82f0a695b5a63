"""End to end: etc/campaigns/spring_mms_offer.toml sends the picture MMS to MMS-capable handsets
(mms channel -> fake MMSC over HTTP) and the SMS to the others (sms channel -> the bundled SMSC
simulator), through the real pipeline, contact control and outbox of a gateway daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.model import EventKind, SignalEvent
from gateway.testing import open_smsc_simulator, wait_until
from gateway.testing.mmsc import open_fake_mmsc
from tests.adapters.mm7.mm7_schema import email_parts, validate_envelope
from tests.plugins.mms_harness import INBOUND, open_mms_gateway

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN = "spring_mms_offer.toml"
PICTURE = "spring_offer.png"


async def test_campaign_sends_mms_to_capable_handsets_and_sms_to_the_others(tmp_path):
    """MMS with the picture to profiles with 'mms', SMS to the rest; a report delivers one."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    shutil.copy(ROOT / "etc" / "campaigns" / CAMPAIGN, campaigns / CAMPAIGN)
    shutil.copy(ROOT / "etc" / "campaigns" / PICTURE, campaigns / PICTURE)
    shutil.copy(ROOT / "etc" / "areas.toml", tmp_path / "areas.toml")
    shutil.copy(ROOT / "etc" / "demo" / "profiles.csv", tmp_path / "profiles.csv")
    async with open_smsc_simulator() as smsc, open_fake_mmsc() as mmsc:
        toml = f"""
[http]
listen = "127.0.0.1:0"

[campaigns]
directory = "{campaigns}"
areas_file = "{tmp_path / "areas.toml"}"

[profiles]
file = "{tmp_path / "profiles.csv"}"

[plugins.mms_mm7]
url = "{mmsc.url}"
username = "{mmsc.username}"
password = "{mmsc.password}"
vasp_id = "vasp-gw"
vas_id = "offers"
sender = "10658000"
inbound_username = "{INBOUND[0]}"
inbound_password = "{INBOUND[1]}"

[[plugins.sms_smpp.smsc]]
name = "sim"
host = "127.0.0.1"
port = {smsc.port}
system_id = "gateway"
password = "secret"
"""
        async with open_mms_gateway(tmp_path, mmsc, toml=toml) as gw:
            # Profiles (etc/demo/profiles.csv): 01 and 04 have mms|wap, 02 wap only, 03 nothing.
            await gw.gateway.pipeline.send(
                [
                    SignalEvent(
                        kind=EventKind.POWER_ON,
                        timestamp=1_772_000_000.0 + i,
                        imsi=f"46000123456780{i}",
                    )
                    for i in (1, 2, 3, 4)
                ]
            )
            await mmsc.wait_submits(2)
            await wait_until(lambda: len(smsc.texts()) == 2)
            mms = sorted(s.request.recipients[0].value for s in mmsc.submits)
            assert mms == ["8613800000001", "8613800000004"]
            assert sorted(smsc.texts()) == [
                "Spring offer for your E8 plan: 1 GB of data for 10 yuan. Reply Y to order.",
                "Spring offer for your M18 plan: 1 GB of data for 10 yuan. Reply Y to order.",
            ]
            sent = next(s for s in mmsc.submits if s.request.recipients[0].value == "8613800000001")
            assert sent.request.subject == "Spring offer for gotone"
            parts = email_parts(sent.content_type, sent.body)
            validate_envelope(parts[0].get_payload(decode=True))
            assert [p.get_content_type() for p in parts[1:]] == [
                "application/smil",
                "text/plain",
                "image/png",
            ]
            assert parts[2].get_payload(decode=True).decode() == (
                "Your G58 plan: 1 GB of spring data for 10 yuan. Reply Y to order."
            )
            assert parts[3].get_payload(decode=True) == (campaigns / PICTURE).read_bytes()

            await wait_until(
                lambda: [d for d in gw.recorder.deliveries if d.state.value == "submitted"][3:]
            )
            channels = {d.msisdn: d.channel for d in gw.recorder.deliveries}
            assert channels == {
                "8613800000001": "mms",
                "8613800000004": "mms",
                "8613800000002": "sms",
                "8613800000003": "sms",
            }
            status, _ = await mmsc.send(
                gw.inbound_url,
                mmsc.delivery_report(sent.message_id, "8613800000001", "Retrieved"),
                auth=INBOUND,
            )
            assert status == 200
            contact = next(
                d.contact_id
                for d in gw.recorder.deliveries
                if d.msisdn == "8613800000001" and d.state.value == "submitted"
            )
            await gw.wait_state(contact, "delivered")
            assert await gw.outbox_state(contact) == "delivered"
            await gw.gateway.ledger.flush()
            rows = await gw.gateway.ledger.query(contact_id=contact, limit=100)
            report = (await gw.handle.command("campaign", "report", "spring-mms-offer")).data
            # 02 (wap only) and 03 (no capabilities) got the SMS because their handset lacks mms.
            assert report["handset_unfit"] == {"mms": 2}
            assert report["matched"] == 4 and report["sent"] == 4
            # The decision and the submit are in the ledger, on the mms channel.
            assert {(r["event"], r["channel"]) for r in rows} == {
                ("allowed", "mms"),
                ("committed", "mms"),
            }
