"""OA: to-dos pushed and withdrawn over real HTTP to a fake OA, signed decision callbacks on
the core HTTP host, and the SMS reminder through contact control."""

from __future__ import annotations

import json
import socket
import sqlite3
import time

import httpx

from gateway.testing.gateway import open_gateway, wait_until
from plugins.oa.service import sign
from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file
from tests.plugins.oa_fake import FakeOa

SECRET = "0123456789abcdef-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, oa_port: int, http_port: int) -> str:
    full = write_full_file(tmp_path / "4a.json")
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "c1.toml").write_text(
        'id = "c1"\nname = "county offer"\nowner = "author"\nchannels = ["sms"]\nkind = "batch"\n'
        '[content.sms]\ntext = "hello"\n'
    )
    return (
        STAFF_TOML.format(full_file=full)
        + f"""
[approval]
required = true
tick = "0.1s"
channel_confirmation = false
countersign = {{ marketing = 2 }}
[campaigns]
directory = "{campaigns}"
[http]
listen = "127.0.0.1:{http_port}"
[plugins.oa]
todo_url = "http://127.0.0.1:{oa_port}/todo"
secret = "{SECRET}"
link = "https://gw.example/approvals/{{approval}}"
attempts = 2
"""
    )


async def post_decision(
    port: int, payload: dict, *, secret: str = SECRET, stamp: str | None = None
):
    body = json.dumps(payload).encode()
    stamp = stamp or str(int(time.time()))
    headers = {"x-oa-timestamp": stamp, "x-oa-signature": sign(secret, stamp, body)}
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"http://127.0.0.1:{port}/oa/approval-callback", content=body, headers=headers
        )


async def test_todo_push_withdraw_and_callback(tmp_path, nursery):
    """Each approver gets a to-do with a link; OA's signed callback decides; a to-do decided
    elsewhere is withdrawn; forged or stale callbacks are refused."""
    oa = FakeOa()
    await nursery.start(oa.serve)
    http_port = free_port()
    async with open_gateway(tmp_path, config(tmp_path, oa.port, http_port)) as gw:
        book = gw.gateway.approvals
        await wait_until(lambda: len(oa.requests) >= 2)
        (approval,) = book.pending()
        assert sorted(oa.actions()) == [
            ("create", f"{approval.id}:0:city1"),
            ("create", f"{approval.id}:0:city2"),
        ]
        todo = oa.requests[0]
        assert todo["link"] == f"https://gw.example/approvals/{approval.id}"
        assert todo["summary"]["name"] == "county offer"
        stamp = oa.headers[0]["x-oa-timestamp"]
        assert oa.headers[0]["x-oa-signature"] == sign(SECRET, stamp, oa.bodies[0])
        # forged, stale and malformed callbacks change nothing
        forged = await post_decision(
            http_port,
            {"approval": approval.id, "account": "city1", "decision": "approve"},
            secret="x" * 20,
        )
        stale = await post_decision(
            http_port,
            {"approval": approval.id, "account": "city1", "decision": "approve"},
            stamp=str(int(time.time()) - 3600),
        )
        assert (forged.status_code, stale.status_code) == (401, 401)
        assert approval.signs == []
        # city1 decides in OA
        ok = await post_decision(
            http_port, {"approval": approval.id, "account": "city1", "decision": "approve"}
        )
        assert ok.status_code == 200 and ok.json() == {"ok": True, "state": "pending"}
        await wait_until(lambda: ("withdraw", f"{approval.id}:0:city1") in oa.actions())
        # an outsider through OA is refused by the book
        outsider = await post_decision(
            http_port, {"approval": approval.id, "account": "prov1", "decision": "approve"}
        )
        assert outsider.status_code == 409
        # city2 decides with gatewayctl: its OA to-do is withdrawn
        await gw.command("approvals", "approve", approval.id, "--as", "city2")
        await wait_until(lambda: ("withdraw", f"{approval.id}:0:city2") in oa.actions())
        assert book.get(approval.id).signs[0].via == "oa"
        trail = await gw.gateway.staff.audit_trail(subject=approval.id)
        assert [(t["actor"], t["outcome"]) for t in trail] == [
            ("city1", "ok"),
            ("prov1", "refused"),
            ("city2", "ok"),
        ]


async def test_sms_reminder_goes_through_contact_control(tmp_path, nursery):
    """Each approver's reminder is a service-class contact, decided and queued in the outbox."""
    oa = FakeOa()
    await nursery.start(oa.serve)
    async with open_gateway(tmp_path, config(tmp_path, oa.port, free_port())) as gw:
        await wait_until(lambda: gw.gateway.outbox.depth("sms") >= 2, within=10)
        (approval,) = gw.gateway.approvals.pending()
        with sqlite3.connect(tmp_path / "state" / "gateway.sqlite") as db:
            rows = db.execute(
                "SELECT contact_id, campaign_id, msisdn, request FROM outbox_entries ORDER BY contact_id"
            ).fetchall()
        assert [r[:3] for r in rows] == [
            (f"approval-reminder:{approval.id}:0:{who}", "approval-reminders", "8613800138000")
            for who in ("city1", "city2")
        ]
        request = json.loads(rows[0][3])
        assert request["campaign_class"] == "service"
        assert f"https://gw.example/approvals/{approval.id}" in json.dumps(
            request, ensure_ascii=False
        )
