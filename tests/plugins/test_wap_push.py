"""The WAP Push channel end to end: campaign -> real contact control -> outbox -> wap_push
channel -> SMSC simulator over TCP (binary submit_sm) -> decoded back; the tracking link
redirects and its click is counted in ``campaign report``; a handset without WAP gets the
campaign's next channel and the reason is counted."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from adapters.wap import push
from adapters.wap.wbxml import ServiceIndication, ServiceLoading
from gateway import hookimpl
from gateway.config import read_toml
from gateway.errors import ConfigError
from gateway.model import ContactRequest, EventKind, Outcome, SignalEvent
from gateway.testing import open_gateway, open_smsc_simulator, wait_until
from plugins.wap_push.channel import si_id_for
from plugins.wap_push.config import parse_wap_push_config

ROOT = Path(__file__).resolve().parents[2]
#: The example campaign of etc/campaigns: wap_push first, sms for handsets without WAP.
CAMPAIGN = ROOT / "etc" / "campaigns" / "data_pack_wap_push.toml"
PROFILES = """msisdn,imsi,brand,products,capabilities
8613800000001,460001234567801,gotone,,mms|wap
8613800000002,460001234567802,mzone,,mms
"""


def gateway_toml(tmp_path: Path, smsc, *, extra: str = "") -> str:
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    (tmp_path / "campaigns" / CAMPAIGN.name).write_bytes(CAMPAIGN.read_bytes())
    (tmp_path / "profiles.csv").write_text(PROFILES, encoding="utf-8")
    system_id, password = next(iter(smsc.credentials.items()))
    return f"""
        [campaigns]
        directory = "{tmp_path / "campaigns"}"

        [profiles]
        file = "{tmp_path / "profiles.csv"}"

        [http]
        listen = "127.0.0.1:0"

        [plugins.wap_push]
        track_clicks = true
        tracking_url = "http://gw.example.test/w"
        si_expires_after = "2d"
        {extra}

        [plugins.wap_push.smsc]
        host = "127.0.0.1"
        port = {smsc.port}
        system_id = "{system_id}"
        password = "{password}"
        source_addr = "10086"
        reconnect_min = "0.05s"
        """


async def http_get(port: int, target: str) -> tuple[int, dict[str, str]]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def http_port(gw) -> int:
    (entry,) = [t for t in gw.daemon.supervisor.tasks if t.name == "http"]
    return entry.obj.port


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []

    @hookimpl
    def gateway_delivery_report(self, delivery):
        self.reports.append((delivery.contact_id, delivery.state.value))


async def test_wap_campaign_end_to_end_click_counted(tmp_path):
    """Campaign -> contact control -> outbox -> binary submit_sm at the SMSC -> SI decodes back;
    the tracking link 302s to the real href and the click is counted once in the report."""
    async with open_smsc_simulator() as smsc:
        async with open_gateway(tmp_path / "gw", gateway_toml(tmp_path, smsc)) as gw:
            recorder = Recorder()
            gw.daemon.pm.register(recorder, name="recorder")
            for action in ("approve", "start"):  # the example starts pending approval
                await gw.command("campaigns", action, "data-pack-wap")
            now = time.time()
            await gw.gateway.pipeline.send(
                [
                    SignalEvent(
                        kind=EventKind.HANDSET_CHANGE,
                        timestamp=now,
                        imsi=f"46000123456780{n}",
                        imei=f"3520990000000{n}0",
                        previous_imei=f"3520990000001{n}0",
                    )
                    for n in (1, 2)
                ]
            )
            await wait_until(lambda: any(s == "delivered" for _, s in recorder.reports), within=30)
            subs = smsc.simulator.submitted
            assert {s.destination_addr for s in subs} == {"8613800000001"}  # only the WAP handset
            assert all(s.esm_class & 0x40 and s.data_coding == 0x04 for s in subs)
            decoded = push.decode([s.short_message for s in subs])
            assert (decoded.dest_port, decoded.src_port) == (2948, 9200)
            si = decoded.document
            assert isinstance(si, ServiceIndication)
            assert si.text == "2 GB for 10 yuan on your new phone"
            assert si.href.startswith("http://gw.example.test/w?t=")
            [contact] = [
                r["contact_id"]
                for r in await gw.gateway.ledger.query(campaign_id="data-pack-wap")
                if r["event"] == "allowed" and r["channel"] == "wap_push"
            ]
            assert si.si_id == si_id_for(contact) and si.action.value == "signal-medium"
            assert si.created is not None and si.expires is not None
            assert (si.expires - si.created).total_seconds() == 2 * 86400

            # the non-WAP handset: passed over for wap_push, its contact goes to the sms queue
            counts = await gw.gateway.outbox.counts("sms")
            assert sum(counts.values()) == 1

            target = si.href.removeprefix("http://gw.example.test")
            port = http_port(gw)
            status, headers = await http_get(port, target)
            assert status == 302
            assert headers["location"] == "http://wap.example.com/offers/data2g?b=gotone"
            status, _ = await http_get(port, target)  # a second click: same redirect
            assert status == 302
            assert (await http_get(port, "/w?t=nosuchtoken"))[0] == 404

            report = (await gw.command("campaign", "report", "data-pack-wap")).data
            assert report["clicked"] == 1  # one contact clicked (twice)
            assert report["handset_unfit"] == {"wap_push": 1}
            assert report["matched"] == 2 and report["delivered"] == 1
            why = await gw.gateway.ledger.query(contact_id=contact)
            assert [r["event"] for r in why if r["event"] == "clicked"] == ["clicked"]
            status = (await gw.command("status")).data["plugins"]["wap_push"]["status"]
            assert status["submitted"] == 1 and status["link_clicks"] == 2


async def test_long_sl_two_sms_and_bad_content(tmp_path):
    """An SL whose href needs two SMS goes as two concatenated binary parts; a contact without
    href, or with a text an SL cannot show, is rejected (reported, never sent)."""
    async with open_smsc_simulator() as smsc:
        toml = gateway_toml(tmp_path, smsc, extra='document = "sl"\nsl_action = "execute-high"')
        toml = toml.replace("track_clicks = true", "track_clicks = false")
        async with open_gateway(tmp_path / "gw", toml) as gw:
            recorder = Recorder()
            gw.daemon.pm.register(recorder, name="recorder")
            long_href = "https://www.example.org/" + "p" * 150
            control, outbox = gw.gateway.contact_control, gw.gateway.outbox
            for cid, content in (
                ("long", {"href": long_href}),
                ("nohref", {}),
                ("sltext", {"href": "http://x/", "text": "an SL cannot show this"}),
            ):
                decision = await control.decide(
                    ContactRequest(
                        contact_id=cid,
                        msisdn="8613800000001",
                        campaign_id="manual",
                        channel="wap_push",
                        content=content,
                        created_at=time.time(),
                    )
                )
                assert decision.outcome is Outcome.ALLOWED
                assert await outbox.enqueue(decision)
            await wait_until(lambda: ("long", "delivered") in recorder.reports, within=30)
            await wait_until(lambda: ("nohref", "rejected") in recorder.reports, within=30)
            await wait_until(lambda: ("sltext", "rejected") in recorder.reports, within=30)
            assert "does not carry text" in (await outbox.show("sltext"))["error"]
            parts = [s.short_message for s in smsc.simulator.submitted]
            assert len(parts) == 2 and all(len(p) <= 140 for p in parts)
            doc = push.decode(parts).document
            assert doc == ServiceLoading(href=long_href, action="execute-high")
            shown = await outbox.show("nohref")
            assert shown["state"] == "rejected" and "href" in shown["error"]
            assert ("nohref", "submitted") not in recorder.reports


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"document": "mms"}, "document"),
        ({"track_clicks": True}, "tracking_url"),
        ({"track_clicks": True, "tracking_url": "http://x/w?a=1"}, "no query"),
        ({"smsc": {"system_id": "x", "colour": 1}}, "colour"),
        ({"si_action": "loud"}, "si_action"),
        ({"transport": "ppg"}, "ppg"),
        ({"transport": "ppg", "ppg": {"url": "ftp://x"}}, "url"),
        ({"transport": "ppg", "ppg": {"url": "http://p/pap", "notify_url": "x"}}, "notify_url"),
        ({"ppg": {"url": "http://ppg/pap"}}, "not used"),
        ({"transport": "ppg", "ppg": {"url": "http://p/"}, "smsc": {"system_id": "a"}}, "not used"),
        ({"transport": "mm7"}, "transport"),
    ],
)
def test_config_errors_name_the_key(table, message):
    """A bad [plugins.wap_push] is refused with the dotted key."""
    with pytest.raises(ConfigError, match=message):
        parse_wap_push_config(table)


def test_reference_config_section_parses():
    """etc/gateway.toml's [plugins.wap_push] section is valid."""
    table = read_toml(ROOT / "etc" / "gateway.toml")["plugins"]["wap_push"]
    section = parse_wap_push_config(table)
    assert section.channel == "wap_push" and section.smsc is None  # off until an SMSC is set


async def test_receipt_overtaking_submit_answer_is_applied(tmp_path):
    """A receipt that arrives before the submit_sm_resp (SMSC answers late) still delivers."""
    async with open_smsc_simulator(response_delay=0.3, receipt_delay=0.0) as smsc:
        toml = gateway_toml(tmp_path, smsc).replace("track_clicks = true", "track_clicks = false")
        async with open_gateway(tmp_path / "gw", toml) as gw:
            recorder = Recorder()
            gw.daemon.pm.register(recorder, name="recorder")
            control, outbox = gw.gateway.contact_control, gw.gateway.outbox
            decision = await control.decide(
                ContactRequest(
                    contact_id="early",
                    msisdn="8613800000001",
                    campaign_id="manual",
                    channel="wap_push",
                    content={"href": "http://www.example.com/", "text": "Hi"},
                    created_at=time.time(),
                )
            )
            assert await outbox.enqueue(decision)
            await wait_until(lambda: ("early", "delivered") in recorder.reports, within=30)
            assert (await outbox.show("early"))["state"] == "delivered"


async def test_content_the_channel_does_not_carry_is_rejected(tmp_path):
    """A picture attachment on a WAP Push contact is rejected with the reason, never sent."""
    async with open_smsc_simulator() as smsc:
        toml = gateway_toml(tmp_path, smsc).replace("track_clicks = true", "track_clicks = false")
        async with open_gateway(tmp_path / "gw", toml) as gw:
            recorder = Recorder()
            gw.daemon.pm.register(recorder, name="recorder")
            decision = await gw.gateway.contact_control.decide(
                ContactRequest(
                    contact_id="pic",
                    msisdn="8613800000001",
                    campaign_id="manual",
                    channel="wap_push",
                    content={"href": "http://x/", "attachment.pic": "image/jpeg /srv/a.jpg"},
                    created_at=time.time(),
                )
            )
            assert await gw.gateway.outbox.enqueue(decision)
            await wait_until(lambda: ("pic", "rejected") in recorder.reports, within=30)
            assert "attachments" in (await gw.gateway.outbox.show("pic"))["error"]
            assert smsc.simulator.submitted == []


async def test_tracking_link_reused_and_location_encoded(tmp_path):
    """A resent contact gets the same tracking link; a non-ASCII href is percent-encoded in the
    302 Location; a click on a link of a contact not in the ledger still redirects."""
    async with open_smsc_simulator() as smsc:
        async with open_gateway(tmp_path / "gw", gateway_toml(tmp_path, smsc)) as gw:
            tracker = gw.gateway.channels["wap_push"].tracker
            message = SimpleNamespace(
                contact_id="c-x", msisdn="8613800000009", campaign_id="k", channel="wap_push"
            )
            (first,) = await tracker.links_for([(message, "http://例子.cn/优惠?x=1")])
            (again,) = await tracker.links_for([(message, "http://other/")])
            assert first == again and len(first.rpartition("t=")[2]) == 8
            status, headers = await http_get(
                http_port(gw), first.removeprefix("http://gw.example.test")
            )
            assert status == 302
            assert headers["location"] == "http://%E4%BE%8B%E5%AD%90.cn/%E4%BC%98%E6%83%A0?x=1"
            assert (await http_get(http_port(gw), "/w"))[0] == 400


async def test_preview_counts_handset_unfit_apart(tmp_path):
    """``preview`` of the WAP campaign: two requests (one falls back to SMS), the passed-over
    channel under handset_unfit, not in not_requested or in the matched total."""
    import json

    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "kind": "handset_change",
                    "timestamp": time.time(),
                    "imsi": f"46000123456780{n}",
                    "imei": f"3520990000000{n}0",
                }
            )
            + "\n"
            for n in (1, 2)
        ),
        encoding="utf-8",
    )
    async with open_smsc_simulator() as smsc:
        async with open_gateway(tmp_path / "gw", gateway_toml(tmp_path, smsc)) as gw:
            result = (await gw.command("preview", "data-pack-wap", "--events", str(events))).data
    assert result["contact_requests"] == 2 and result["events_matched"] == 2
    assert result["handset_unfit"] == {"wap_push": 1}
    assert "handset_unfit.wap_push" not in result["not_requested"]
