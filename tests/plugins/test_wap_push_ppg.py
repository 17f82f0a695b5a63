"""The WAP Push channel through an external Push Proxy Gateway (PAP 2.0 over real HTTP): the
push-message as the PPG reads it, each class of result code mapped to a delivery state, and
the PPG's result notification ending the contact."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs
import pytest
import trio

from adapters.wap import pap, wbxml
from gateway import hookimpl
from gateway.model import ContactRequest, Outcome
from gateway.testing import open_gateway, wait_until


@attrs.define
class FakePpg:
    """A PPG speaking HTTP/1.1 on loopback: answers each push with the next scripted reply for
    its MSISDN (an int is a PAP code, a string "http NNN" an HTTP status), records requests."""

    script: dict[str, list] = attrs.field(factory=dict)
    requests: list[dict] = attrs.field(factory=list)
    credentials: str = "Basic " + base64.b64encode(b"wapgw:s3cret").decode()
    port: int = 0

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream) -> None:
        async with stream:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v for k, v in (x.split(": ", 1) for x in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                body, buffer = buffer[:length], buffer[length:]
                status, reply = self._answer(headers, body)
                await stream.send_all(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/xml\r\n"
                    f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )

    def _answer(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        if headers.get("authorization") != self.credentials:
            return 401, b""
        # an independent reading of the multipart/related body: the email package
        message = email.message_from_bytes(
            b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body,
            policy=email.policy.HTTP,
        )
        control, content = message.iter_parts()
        root = ET.fromstring(control.get_payload(decode=True))
        push = root.find("push-message")
        address = push.find("address").get("address-value")
        msisdn = address.split("=+")[1].split("/")[0]
        self.requests.append(
            {
                "push": dict(push.attrib),
                "address": address,
                "qos": dict(push.find("quality-of-service").attrib),
                "content_type": content.get_content_type(),
                "content": content.get_payload(decode=True),
                "type_param": message.get_param("type"),
            }
        )
        replies = self.script.get(msisdn) or [1001]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, str):
            return int(reply.split()[1]), b"<html>busy</html>"
        push_id = push.get("push-id")
        return 200, (
            f'<?xml version="1.0"?>\n<pap><push-response push-id="{push_id}">'
            f'<response-result code="{reply}" desc="{pap.CODES.get(reply, "")}"/>'
            "</push-response></pap>"
        ).encode()


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str | None]] = []

    @hookimpl
    def gateway_delivery_report(self, delivery):
        self.reports.append((delivery.contact_id, delivery.state.value, delivery.error))

    def states(self, cid: str) -> list[str]:
        return [s for c, s, _ in self.reports if c == cid]


def toml(ppg: FakePpg, extra: str = "") -> str:
    return f"""
        [http]
        listen = "127.0.0.1:0"

        [outbox]
        retry_backoff = "0.05s"
        retry_backoff_max = "0.1s"
        max_attempts = 3
        scheduler_interval = "0.05s"

        [plugins.wap_push]
        transport = "ppg"
        si_expires_after = "1d"

        [plugins.wap_push.ppg]
        url = "http://127.0.0.1:{ppg.port}/pap"
        username = "wapgw"
        password = "s3cret"
        address_domain = "ppg.test"
        deliver_within = "2h"
        notify_url = "http://gw.example.test/wap/notify?key=n0tify"
        {extra}
        """


async def enqueue(gw, cid: str, msisdn: str, **content: str) -> None:
    decision = await gw.gateway.contact_control.decide(
        ContactRequest(
            contact_id=cid,
            msisdn=msisdn,
            campaign_id="ppg",
            channel="wap_push",
            content=content or {"href": "http://www.example.com/o", "text": "Offer ä"},
            created_at=time.time(),
        )
    )
    assert decision.outcome is Outcome.ALLOWED
    assert await gw.gateway.outbox.enqueue(decision)


async def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


NOTIFY = "/wap/notify?key=n0tify"


def notification(push_id: str, state: str, code: int = 1000) -> bytes:
    return (
        '<?xml version="1.0"?><pap><resultnotification-message push-id="'
        f'{push_id}" message-state="{state}" code="{code}"/></pap>'
    ).encode()


async def test_ppg_push_message_accepted_then_delivered(tmp_path, nursery):
    """A push goes to the PPG as PAP 2.0 (Basic auth, address, push-id, SI XML); 1001 ->
    submitted; the PPG's result notification 'delivered' ends the contact delivered; a
    notification without the notify_url's key is refused (403)."""
    ppg = FakePpg()
    await nursery.start(ppg.serve)
    async with open_gateway(tmp_path / "gw", toml(ppg)) as gw:
        recorder = Recorder()
        gw.daemon.pm.register(recorder, name="recorder")
        await enqueue(gw, "c-ok", "8613800000001")
        await wait_until(lambda: "submitted" in recorder.states("c-ok"), within=30)
        (req,) = ppg.requests
        assert req["address"] == "WAPPUSH=+8613800000001/TYPE=PLMN@ppg.test"
        assert req["push"]["push-id"] == "c-ok"
        assert (
            req["push"]["ppg-notify-requested-to"] == "http://gw.example.test/wap/notify?key=n0tify"
        )
        assert req["push"]["deliver-before-timestamp"].endswith("Z")
        assert req["qos"]["bearer"] == "SMS" and req["type_param"] == "application/xml"
        assert req["content_type"] == "text/vnd.wap.si"
        si = ET.fromstring(req["content"]).find("indication")
        assert si.get("href") == "http://www.example.com/o" and si.text == "Offer ä"
        assert si.get("si-expires") and si.get("created")
        (entry,) = [t for t in gw.daemon.supervisor.tasks if t.name == "http"]
        forged = notification("c-ok", "undeliverable")
        assert (await post(entry.obj.port, "/wap/notify", forged))[0] == 403  # no key
        assert (await post(entry.obj.port, "/wap/notify?key=guess", forged))[0] == 403
        assert recorder.states("c-ok") == ["submitted"]
        status, body = await post(entry.obj.port, NOTIFY, notification("c-ok", "delivered"))
        assert status == 200
        assert ET.fromstring(body).find(".//response-result").get("code") == "1000"
        assert recorder.states("c-ok") == ["submitted", "delivered"]
        assert (await gw.gateway.outbox.show("c-ok"))["state"] == "delivered"
        status, body = await post(entry.obj.port, NOTIFY, notification("nope", "delivered"))
        assert ET.fromstring(body).find(".//response-result").get("code") == "2004"
        assert (await post(entry.obj.port, NOTIFY, b"<not-pap/>"))[0] == 400


@pytest.mark.parametrize(
    ("script", "states", "error"),
    [
        ([1000], ["submitted"], None),
        ([2007], ["submitted"], None),  # duplicate push id: a resend the PPG already has
        ([2002], ["rejected"], "PAP 2002 Address error"),
        ([3006], ["rejected"], "PAP 3006 Transformation failure"),
        ([4001, 1001], ["submitted"], None),  # service unavailable: retried
        ([3000, 1000], ["submitted"], None),  # internal error: retried
        (["http 503", 1000], ["submitted"], None),
        (["http 400"], ["rejected"], "PPG HTTP 400"),
        ([4001], ["rejected"], "PAP 4001"),  # still failing after [outbox] max_attempts
    ],
)
async def test_ppg_result_codes(tmp_path, nursery, script, states, error):
    """Each class of PAP result code (and HTTP status) gives its delivery state."""
    ppg = FakePpg(script={"8613800000002": list(script)})
    await nursery.start(ppg.serve)
    async with open_gateway(tmp_path / "gw", toml(ppg)) as gw:
        recorder = Recorder()
        gw.daemon.pm.register(recorder, name="recorder")
        await enqueue(gw, "c1", "8613800000002")
        await wait_until(lambda: recorder.states("c1"), within=60)
        assert recorder.states("c1") == states
        errors = [e for c, _, e in recorder.reports if c == "c1"]
        if error is not None:
            assert error in (errors[-1] or "")
        expected_requests = len(script) if script != [4001] else 3
        assert len(ppg.requests) == expected_requests


async def test_ppg_wrong_credentials_rejected(tmp_path, nursery):
    """A PPG refusing our credentials (HTTP 401) rejects the push with the status."""
    ppg = FakePpg(credentials="Basic nobody")
    await nursery.start(ppg.serve)
    async with open_gateway(tmp_path / "gw", toml(ppg)) as gw:
        recorder = Recorder()
        gw.daemon.pm.register(recorder, name="recorder")
        await enqueue(gw, "c401", "8613800000003")
        await wait_until(lambda: recorder.states("c401"), within=30)
        assert recorder.reports == [("c401", "rejected", "PPG HTTP 401")]


@pytest.mark.skipif(shutil.which("xml2wbxml") is None, reason="libwbxml2-utils not installed")
@pytest.mark.parametrize(
    "doc",
    [
        wbxml.ServiceIndication(
            href="https://www.example.net/a&b<c",
            text="Ünïcode & <tags>",
            si_id="x1",
            created=dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC),
            action="signal-high",
        ),
        wbxml.ServiceLoading(href="http://www.example.com/x?a=1&b=2", action="cache"),
    ],
)
def test_pap_document_xml_compiles_to_our_wbxml(tmp_path: Path, doc):
    """The SI/SL XML we give a PPG, compiled by libwbxml, is exactly our own WBXML."""
    content, _ = pap.document_xml(doc)
    src, out = tmp_path / "d.xml", tmp_path / "d.wbxml"
    src.write_bytes(content)
    subprocess.run(
        ["xml2wbxml", "-n", "-v", "1.2", "-o", str(out), str(src)], check=True, capture_output=True
    )
    ours = (
        wbxml.encode_si(doc) if isinstance(doc, wbxml.ServiceIndication) else wbxml.encode_sl(doc)
    )
    assert out.read_bytes() == ours


def test_pap_parsers_refuse_garbage():
    """Non-PAP answers raise PapError with a reason; codes map to outcomes."""
    for data in (b"", b"<html/>", b"<pap/>", b"<pap><push-response/></pap>", b"x" * 70_000):
        with pytest.raises(pap.PapError):
            pap.parse_push_response(data)
    assert pap.parse_push_response(
        b'<pap><badmessage-response code="2000" desc="Bad request"/></pap>'
    ) == pap.PushResponse(code=2000, desc="Bad request")
    assert [pap.outcome(c) for c in (1000, 1001, 2007, 2001, 3001, 3010, 4000)] == [
        "submitted",
        "submitted",
        "submitted",
        "rejected",
        "rejected",
        "retry",
        "retry",
    ]
