"""The MMS channel against the fake MMSC over real HTTP: SubmitReq bodies checked by the MM7
schema and Python's email package, each status class, timeouts, retries, delivery reports,
read replies and MO MMS inbound, HTTP Basic refused both ways, picture size limits."""

from __future__ import annotations

import socket

import pytest
import trio

from adapters.mm7 import RELEASES, Status
from gateway.model import ContactRequest
from gateway.testing import open_gateway, wait_until
from gateway.testing.mmsc import FakeMmsc, MmscAnswer, open_fake_mmsc
from plugins.mms_mm7.compose import image_size
from tests.adapters.mm7.mm7_schema import email_parts, validate_envelope
from tests.plugins.mms_harness import INBOUND, Recorder, open_mms_gateway, png


async def test_submit_carries_the_mm_and_a_delivery_report_delivers(tmp_path):
    """A contact becomes a valid SubmitReq with SMIL, text and picture; Retrieved -> delivered."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        (tmp_path / "media" / "offer.png").write_bytes(png(64, 48))
        await gw.send(
            "c1",
            "8613800000001",
            text="春季优惠: 5元100条彩信",
            subject="Spring offer",
            **{"attachment.picture": "image/png offer.png"},
        )
        await gw.wait_state("c1", "submitted")
        [sent] = mmsc.submits
        assert mmsc.auth_refused == 0 and mmsc.requests == 1  # Basic auth sent up front
        parts = email_parts(sent.content_type, sent.body)
        assert [p.get_content_type() for p in parts] == [
            "text/xml",
            "application/smil",
            "text/plain",
            "image/png",
        ]
        validate_envelope(parts[0].get_payload(decode=True))
        assert parts[2].get_payload(decode=True).decode("utf-8") == "春季优惠: 5元100条彩信"
        assert parts[3].get_payload(decode=True) == (tmp_path / "media" / "offer.png").read_bytes()
        request = sent.request
        assert request.transaction_id == "c1"
        assert [r.value for r in request.recipients] == ["8613800000001"]
        assert (request.vasp_id, request.vas_id, request.service_code) == (
            "vasp-gw",
            "offers",
            "MKT001",
        )
        assert request.sender is not None and request.sender.value == "10658000"
        assert (request.subject, request.charged_party, request.delivery_report) == (
            "Spring offer",
            "Sender",
            True,
        )
        assert (request.expiry, request.message_class) == ("PT86400S", "Advertisement")
        delivery = next(d for d in gw.recorder.deliveries if d.state.value == "submitted")
        assert delivery.message_id == sent.message_id

        status, answer = await mmsc.send(
            gw.inbound_url,
            mmsc.delivery_report(sent.message_id, "+8613800000001", "Retrieved"),
            auth=INBOUND,
        )
        assert status == 200 and answer is not None
        assert (answer.kind, answer.status.code) == ("DeliveryReportRsp", 1000)
        await gw.wait_state("c1", "delivered")
        assert await gw.outbox_state("c1") == "delivered"
        status = (await gw.handle.command("status")).data["plugins"]["mms_mm7"]["status"]
        assert (status["submitted"], status["receipts"], status["running"]) == (1, 1, True)


@pytest.mark.parametrize(
    ("answers", "states", "stat"),
    [
        ([MmscAnswer(status=1100)], ["submitted"], "submitted"),
        ([MmscAnswer(status=2002)], ["rejected"], "refused"),
        ([MmscAnswer(status=2004, fault=True)], ["rejected"], "refused"),
        ([MmscAnswer(status=3001), MmscAnswer(status=1000)], ["submitted"], "retried"),
        ([MmscAnswer(status=3002, fault=True)], ["rejected"], "refused"),
        ([MmscAnswer(status=4006, fault=True), MmscAnswer()], ["submitted"], "retried"),
        ([MmscAnswer(status=4007)], ["rejected"], "refused"),
        ([MmscAnswer(http_status=503), MmscAnswer()], ["submitted"], "unavailable"),
    ],
    ids=["1100", "2002", "2004-fault", "3001-retry", "3002-fault", "4006-retry", "4007", "http503"],
)
async def test_status_classes(tmp_path, answers, states, stat):
    """1xxx submits; 2xxx, 3002 and 4007 reject at once; 3001, 4006 retry; HTTP 503 pauses."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        mmsc.answers.extend(answers)
        await gw.send("c1")
        await gw.wait_state("c1", states[-1])
        assert gw.recorder.states("c1") == states
        assert len(mmsc.submits) == len(answers)
        assert gw.channel.statistics()[stat] >= 1
        if states == ["rejected"]:
            shown = await gw.gateway.outbox.show("c1")
            code = str(answers[0].status)
            assert shown["state"] == "rejected" and f"MM7 {code}" in shown["error"]


async def test_timeout_is_retried(tmp_path):
    """No SubmitRsp within the timeout: counted, retried, and the second try submits."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        mmsc.answers.append(MmscAnswer(delay=3.0))
        await gw.send("c1")
        await gw.wait_state("c1", "submitted")
        assert len(mmsc.submits) == 2
        assert gw.channel.statistics()["timeouts"] == 1
        assert gw.recorder.states("c1") == ["submitted"]


async def test_retries_run_out(tmp_path):
    """A server error on every attempt ends as rejected once [outbox] max_attempts is used up."""
    async with open_fake_mmsc(default=MmscAnswer(status=3000)) as mmsc:
        async with open_mms_gateway(tmp_path, mmsc) as gw:
            await gw.send("c1")
            await gw.wait_state("c1", "rejected")
            assert len(mmsc.submits) == 3  # max_attempts = 3
            shown = await gw.gateway.outbox.show("c1")
            assert "MM7 3000" in shown["error"]


async def test_mmsc_refuses_our_credentials(tmp_path):
    """HTTP 401 from the MMSC: nothing sent, no attempt used, the channel pauses; once the
    credentials match again the message goes out."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        right, mmsc.password = mmsc.password, "changed"  # the gateway keeps the old one
        await gw.send("c1")
        await wait_until(lambda: mmsc.auth_refused >= 2, within=20)
        assert mmsc.submits == [] and gw.recorder.states("c1") == []
        shown = await gw.gateway.outbox.show("c1")
        assert shown["attempts"] == 0 and "HTTP 401" in shown["error"]
        stats = gw.channel.statistics()
        assert stats["auth_refused"] >= 2 and stats["unavailable"] >= 2
        mmsc.password = right
        await gw.wait_state("c1", "submitted")
        assert (await gw.gateway.outbox.show("c1"))["attempts"] == 0


async def test_mmsc_down_then_up_loses_nothing(tmp_path):
    """Connection refused: the message waits without using attempts and goes out once the MMSC
    listens (an outage does not use up the campaign's messages)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mmsc = FakeMmsc(port=port)  # not listening yet
    async with open_mms_gateway(tmp_path, mmsc) as gw, trio.open_nursery() as nursery:
        await gw.send("c1")
        await wait_until(lambda: gw.channel.statistics()["unavailable"] >= 3, within=20)
        assert (await gw.gateway.outbox.show("c1"))["attempts"] == 0
        await nursery.start(mmsc.serve, "127.0.0.1", port)
        await gw.wait_state("c1", "submitted")
        assert len(mmsc.submits) == 1
        nursery.cancel_scope.cancel()


async def test_we_refuse_an_mmsc_without_credentials(tmp_path):
    """A delivery report without our inbound credentials gets 401 and changes nothing."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        await gw.send("c1")
        await gw.wait_state("c1", "submitted")
        report = mmsc.delivery_report(mmsc.submits[0].message_id, "8613800000001", "Rejected")
        for auth in (None, ("mmsc", "wrong")):
            status, answer = await mmsc.send(gw.inbound_url, report, auth=auth)
            assert (status, answer) == (401, None)
        assert gw.channel.statistics()["inbound_refused"] == 2
        assert await gw.outbox_state("c1") == "submitted"


@pytest.mark.parametrize(
    ("mm_status", "state"),
    [("Expired", "expired"), ("Rejected", "undeliverable"), ("Forwarded", "delivered")],
)
async def test_delivery_report_states(tmp_path, mm_status, state):
    """Each final MMStatus becomes its delivery state in the outbox; Deferred changes nothing."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        await gw.send("c1")
        await gw.wait_state("c1", "submitted")
        message_id = mmsc.submits[0].message_id
        deferred = mmsc.delivery_report(message_id, "8613800000001", "Deferred")
        assert (await mmsc.send(gw.inbound_url, deferred, auth=INBOUND))[0] == 200
        assert await gw.outbox_state("c1") == "submitted"
        final = mmsc.delivery_report(message_id, "8613800000001", mm_status)
        assert (await mmsc.send(gw.inbound_url, final, auth=INBOUND))[0] == 200
        await gw.wait_state("c1", state)
        assert await gw.outbox_state("c1") == state


async def test_read_reply_is_answered_and_counted(tmp_path):
    """A ReadReplyReq gets ReadReplyRsp 1000 and is counted; the delivery state is unchanged."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        await gw.send("c1")
        await gw.wait_state("c1", "submitted")
        reply = mmsc.read_reply(mmsc.submits[0].message_id, "8613800000001")
        status, answer = await mmsc.send(gw.inbound_url, reply, auth=INBOUND)
        assert status == 200 and answer is not None
        assert (answer.kind, answer.transaction_id, answer.status) == (
            "ReadReplyRsp",
            reply.transaction_id,
            Status.of(1000),
        )
        assert gw.channel.statistics()["read_replies"] == 1
        assert await gw.outbox_state("c1") == "submitted"


async def test_mo_mms_reaches_the_mo_hook(tmp_path):
    """A DeliverReq (MO MMS) becomes an MoMessage with the normalised sender and its text."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        request, content = mmsc.mo_mms(
            "013800000009", "10658000", "Y 订购", subject="re", picture=png(8, 8)
        )
        status, answer = await mmsc.send(gw.inbound_url, request, content, auth=INBOUND)
        assert status == 200 and answer is not None
        assert (answer.kind, answer.status.code, answer.service_code) == (
            "DeliverRsp",
            1000,
            "MKT001",
        )
        [mo] = gw.recorder.mo
        assert (mo.msisdn, mo.destination, mo.text, mo.channel) == (
            "8613800000009",
            "10658000",
            "Y 订购",
            "mms",
        )
        bad, _ = mmsc.mo_mms("not-a-number", "10658000", "x")
        status, answer = await mmsc.send(gw.inbound_url, bad, None, auth=INBOUND)
        assert answer is not None and answer.status.code == 2002
        assert len(gw.recorder.mo) == 1


async def test_unreadable_inbound_gets_a_fault(tmp_path):
    """A body that is not MM7 gets HTTP 500 with a SOAP Fault (VASPErrorRsp) and the status."""
    import httpx

    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        async with httpx.AsyncClient(auth=httpx.BasicAuth(*INBOUND)) as client:
            answer = await client.post(
                gw.inbound_url, content=b"<nope", headers={"Content-Type": "text/xml"}
            )
        assert answer.status_code == 500
        validate_envelope(answer.content)
        assert b"VASPErrorRsp" in answer.content and b"<StatusCode>2007<" in answer.content


async def test_picture_over_the_profile_is_scaled_with_pillow(tmp_path):
    """A picture larger than max_image_size is scaled to fit before the SubmitReq (Pillow)."""
    extra = 'max_image_size = "160x120"\nmax_message_bytes = 30000\n'
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc, extra) as gw:
        (tmp_path / "media" / "big.png").write_bytes(png(800, 600, noise=True))
        await gw.send("c1", text="big", **{"attachment.pic": "big.png"})
        await gw.wait_state("c1", "submitted")
        [sent] = mmsc.submits
        picture = [
            p
            for p in email_parts(sent.content_type, sent.body)
            if p.get_content_maintype() == "image"
        ]
        width, height = image_size(picture[0].get_payload(decode=True))
        assert width <= 160 and height <= 120
        assert len(sent.content.body) <= 30000
        assert gw.channel.statistics()["scaled"] == 1


async def test_picture_over_the_profile_is_refused_without_pillow(tmp_path):
    """Without Pillow, a picture over the limits is rejected with the reason, never sent."""
    extra = 'max_image_size = "160x120"\n'
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc, extra) as gw:
        gw.channel.composer.scale = False  # as when Pillow is not installed
        (tmp_path / "media" / "big.png").write_bytes(png(800, 600))
        await gw.send("c1", text="big", **{"attachment.pic": "big.png"})
        await gw.wait_state("c1", "rejected")
        error = (await gw.gateway.outbox.show("c1"))["error"]
        assert "800x600" in error and "install Pillow" in error
        assert mmsc.submits == []


async def test_missing_picture_and_href_are_rejected(tmp_path):
    """A missing or unreadable picture, or an href the channel does not carry, is rejected."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        (tmp_path / "media" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
        await gw.send("c1", text="x", **{"attachment.pic": "nowhere.png"})
        await gw.send("c2", text="x", href="http://example.com/")
        await gw.send("c3", text="x", **{"attachment.pic": "broken.png"})
        await gw.wait_state("c1", "rejected")
        await gw.wait_state("c2", "rejected")
        await gw.wait_state("c3", "rejected")
        assert "not a readable image/png" in (await gw.gateway.outbox.show("c3"))["error"]
        assert "nowhere.png" in (await gw.gateway.outbox.show("c1"))["error"]
        assert "href" in (await gw.gateway.outbox.show("c2"))["error"]
        assert mmsc.submits == []


async def test_rel5_release(tmp_path):
    """release = "REL-5" sends the REL-5 namespace and version, valid against that schema."""
    rel5 = RELEASES["REL-5"]
    async with open_fake_mmsc(release=rel5) as mmsc:
        async with open_mms_gateway(tmp_path, mmsc, 'release = "REL-5"\n') as gw:
            await gw.send("c1")
            await gw.wait_state("c1", "submitted")
            envelope = email_parts(mmsc.submits[0].content_type, mmsc.submits[0].body)[0]
            xml = envelope.get_payload(decode=True)
            validate_envelope(xml, rel5.namespace)
            assert f"<MM7Version>{rel5.version}</MM7Version>".encode() in xml


async def test_shutdown_waits_for_the_submit_in_flight(tmp_path):
    """Stopping the gateway drains: a SubmitReq on the wire is answered and recorded first."""
    async with open_fake_mmsc() as mmsc:
        mmsc.answers.append(MmscAnswer(delay=0.3))
        async with open_mms_gateway(tmp_path, mmsc) as gw:
            await gw.send("c1")
            await mmsc.wait_submits(1)
        assert gw.recorder.states("c1") == ["submitted"]


async def test_report_for_an_unknown_message_is_answered(tmp_path):
    """A delivery report for a MessageID we never got is answered 1000 and changes nothing."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        report = mmsc.delivery_report("no-such-id", "8613800000001", "Retrieved")
        status, answer = await mmsc.send(gw.inbound_url, report, auth=INBOUND)
        assert status == 200 and answer is not None and answer.status.code == 1000
        assert gw.recorder.deliveries == []


async def test_reload_applies_to_the_next_submit(tmp_path):
    """A reloaded [plugins.mms_mm7] (new VASID, smaller picture limit) applies to the next SubmitReq."""
    async with open_fake_mmsc() as mmsc, open_mms_gateway(tmp_path, mmsc) as gw:
        path = gw.handle.config_path
        path.write_text(
            path.read_text().replace(
                'vas_id = "offers"', 'vas_id = "winter"\nprofile = "image-basic"'
            )
        )
        assert gw.handle.daemon.reload() is None
        (tmp_path / "media" / "big.png").write_bytes(png(320, 240))
        await gw.send("c1", text="x", **{"attachment.pic": "big.png"})
        await gw.wait_state("c1", "submitted")
        [sent] = mmsc.submits
        assert sent.request.vas_id == "winter"
        picture = [
            p
            for p in email_parts(sent.content_type, sent.body)
            if p.get_content_maintype() == "image"
        ]
        assert image_size(picture[0].get_payload(decode=True)) == (160, 120)


async def test_embedded_mmsc_for_the_demo(tmp_path):
    """embedded_mmsc = true (demo): MMS go to an in-process fake MMSC that reports them retrieved."""
    toml = '[plugins.mms_mm7]\nembedded_mmsc = true\nembedded_report_delay = "0.05s"\n'
    async with open_gateway(tmp_path / "gw", toml) as handle:
        recorder = Recorder()
        handle.daemon.pm.register(recorder, name="recorder")
        channel = handle.gateway.channels["mms"]
        await wait_until(lambda: channel.queue is not None)
        assert channel.config.url.startswith("http://127.0.0.1:")
        control = handle.gateway.contact_control
        decision = await control.decide(
            ContactRequest(
                contact_id="d1",
                msisdn="8613800000001",
                campaign_id="demo",
                channel="mms",
                content={"text": "hi"},
            )
        )
        assert await handle.gateway.outbox.enqueue(decision)
        await wait_until(lambda: recorder.states("d1") == ["submitted", "delivered"])
