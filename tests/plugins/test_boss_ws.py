"""The BOSS/CRM webservices over real HTTP on a real gateway: dispatch and work orders,
lifecycle and status, the touchpoint query against the real SQLite contact control, CRM
feedback (an acceptance at the counter ends in a BOSS order and a result SMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from gateway.campaigns.targets import read_targets
from gateway.testing import open_gateway, open_smsc_simulator, wait_until
from gateway.testing.boss import open_fake_boss
from plugins.boss_orders import RUNNING as ORDERS
from tests.plugins.boss_harness import JSON_ORDER, SMSC

A, B, C = "8613800000001", "8613800000002", "8613800000003"


def http_port(gw) -> int:
    (entry,) = [t for t in gw.daemon.supervisor.tasks if t.name == "http"]
    return entry.obj.port


def ws_config(tmp_path, extra: str = "") -> str:
    (tmp_path / "profiles.csv").write_text(
        f"msisdn,imsi,brand,plan\n{A},460001,gotone,G58\n{B},460002,mzone,M18\n{C},460003,gotone,G58\n"
    )
    (tmp_path / "drop").mkdir(exist_ok=True)
    return (
        f"""
[http]
listen = "127.0.0.1:0"
[http.clients.crm]
api_key = "boss-crm-test-key-0123456789"

[profiles]
file = "{tmp_path / "profiles.csv"}"

[plugins.boss_ws]
enabled = true
fetch_roots = ["{tmp_path / "drop"}"]
max_inline_targets = 3
"""
        + extra
    )


def campaign(cid: str, **more) -> dict:
    return {
        "id": cid,
        "name": f"offer {cid}",
        "kind": "batch",
        "channels": ["sms"],
        "content": {"sms": {"text": "Dear {brand|customer}: 1 GB for 10 yuan"}},
        **more,
    }


async def run(gw, cid: str, *actions: str) -> None:
    for action in actions:
        await gw.command("campaigns", action, cid)


async def test_dispatch_then_status_and_lifecycle(tmp_path):
    """A work order with inline targets creates a campaign waiting for approval (even if it
    asks to run); an update by file reference replaces the list; status, pause, resume and
    cancel answer over HTTP; refused inputs get a 4xx with the reason."""
    drop = tmp_path / "drop"
    async with open_gateway(tmp_path / "gw", ws_config(tmp_path)) as gw:
        url = f"http://127.0.0.1:{http_port(gw)}/boss"
        async with httpx.AsyncClient(headers={"X-Api-Key": "boss-crm-test-key-0123456789"}) as http:
            body = {
                "work_order": "WO-1",
                "campaign": campaign("spring", initial_state="running"),
                "targets": [A, "13800000002"],
            }
            r = await http.post(f"{url}/campaigns", json=body)
            assert r.status_code == 201, r.text
            assert r.json() == {
                "campaign_id": "spring",
                "result": "created",
                "state": "pending_approval",
                "targets": 2,
            }
            r = await http.get(f"{url}/campaigns/status", params={"id": "spring"})
            assert r.status_code == 200
            assert r.json()["state"] == "pending_approval" and r.json()["targets"] == 2

            (drop / "big.txt").write_text(f"{A}\n{B}\n{C}\n8613800000004\n")
            digest = hashlib.sha256((drop / "big.txt").read_bytes()).hexdigest()
            ref = {"url": f"file://{drop / 'big.txt'}", "sha256": digest}
            r = await http.post(
                f"{url}/campaigns",
                json={"work_order": "WO-2", "campaign": campaign("spring"), "targets_file": ref},
            )
            assert r.status_code == 200 and r.json()["targets"] == 4
            assert r.json()["result"] == "updated"

            refused = [
                {"work_order": "WO-3", "campaign": campaign("x"), "targets": [A, B, C, A]},
                {
                    "work_order": "WO-4",
                    "campaign": campaign("x"),
                    "targets_file": {**ref, "sha256": "0" * 64},
                },
                {
                    "work_order": "WO-5",
                    "campaign": campaign("x"),
                    "targets_file": {"url": "file:///etc/passwd"},
                },
                {"work_order": "WO-6", "campaign": campaign("x"), "targets": ["12"]},
                {"work_order": "WO-7", "campaign": {**campaign("x"), "channels": []}},
                {
                    "work_order": "WO-8",
                    "campaign": campaign("x"),
                    "targets_file": {"url": "ftp://h/f"},
                },
            ]
            for document in refused:
                r = await http.post(f"{url}/campaigns", json=document)
                assert r.status_code == 400, (document["work_order"], r.text)
                assert r.json()["error"]
            r = await http.post(f"{url}/campaigns", content=b"{not json")
            assert r.status_code == 400
            assert gw.gateway.campaigns.get("x") is None

            r = await http.post(f"{url}/campaigns/pause", json={"id": "spring"})
            assert r.status_code == 409  # not running yet: approval first
            await run(gw, "spring", "approve", "start")
            for action, state in (
                ("pause", "paused"),
                ("resume", "running"),
                ("cancel", "cancelled"),
            ):
                r = await http.post(f"{url}/campaigns/{action}", json={"id": "spring"})
                assert (r.status_code, r.json()["state"]) == (200, state)
            r = await http.post(f"{url}/campaigns/pause", json={"id": "nope"})
            assert r.status_code == 404
            r = await http.get(f"{url}/campaigns/status", params={"id": "spring"})
            assert [w["work_order"] for w in r.json()["work_orders"]] == ["WO-1", "WO-2"]
    async with open_gateway(tmp_path / "gw", ws_config(tmp_path)) as gw:
        cdef = gw.gateway.campaigns.get("spring")
        assert cdef.campaign.state.value == "cancelled"
        # a batch campaign reads its list when it runs: the file it names holds the 4 numbers
        assert len(read_targets(Path(cdef.target_list))) == 4


CAP_CRM = """
[contact]
passive_channels = []

[contact.caps.crm_daily]
scope = "channel"
channel = "crm"
window = "day"
limit = 1
"""


async def test_touchpoint_respects_profile_dnd_and_caps(tmp_path):
    """The counter gets the running campaigns the subscriber qualifies for (profile predicate,
    target list), best priority first; nothing for a do-not-disturb number; with recorded
    touchpoints, the crm channel's daily cap of 1 lets one offer through, then none."""
    config = ws_config(tmp_path, "record_touchpoints = false\n")
    async with open_gateway(tmp_path / "gw", config) as gw:
        url = f"http://127.0.0.1:{http_port(gw)}/boss"
        gold = campaign(
            "gold",
            priority=80,
            kind="realtime",
            trigger={
                "events": ["power_on"],
                "conditions": [{"type": "profile", "attribute": "brand", "equals": "gotone"}],
            },
        )
        async with httpx.AsyncClient(headers={"X-Api-Key": "boss-crm-test-key-0123456789"}) as http:
            for body in (
                {"work_order": "W1", "campaign": gold},
                {
                    "work_order": "W2",
                    # paced so that it is still running (the second target in 100 s) when the
                    # counter asks: a finished batch is not offered
                    "campaign": campaign("listed", priority=10, batch={"rate": 0.01}),
                    "targets": [A, B],
                },
                {"work_order": "W3", "campaign": campaign("draft-only"), "targets": [A]},
            ):
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
            await run(gw, "gold", "approve", "start")
            await run(gw, "listed", "approve", "start")

            async def offers(msisdn):
                r = await http.post(f"{url}/touchpoint", json={"msisdn": msisdn})
                assert r.status_code == 200, r.text
                return [o["campaign_id"] for o in r.json()["offers"]], r.json()

            assert (await offers(A))[0] == ["gold", "listed"]
            assert (await offers(B))[0] == ["listed"]  # mzone: not gold
            assert (await offers(C))[0] == ["gold"]  # not on the list
            _, answer = await offers(A)
            assert answer["offers"][0]["text"] == "Dear gotone: 1 GB for 10 yuan"
            await gw.command("dnd", "add", "global_opt_out", A)
            got, answer = await offers(A)
            assert got == [] and set(answer["not_offered"]) == {"gold", "listed"}
            r = await http.post(f"{url}/touchpoint", json={"msisdn": "x"})
            assert r.status_code == 400

    config = ws_config(tmp_path, "record_touchpoints = true\n" + CAP_CRM)
    async with open_gateway(tmp_path / "gw2", config) as gw:
        url = f"http://127.0.0.1:{http_port(gw)}/boss"
        async with httpx.AsyncClient(headers={"X-Api-Key": "boss-crm-test-key-0123456789"}) as http:
            for cid in ("one", "two"):  # real-time: they stay running (a batch may finish)
                realtime = campaign(cid, kind="realtime", trigger={"events": ["power_on"]})
                body = {"work_order": cid, "campaign": realtime}
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
                await run(gw, cid, "approve", "start")
            first = (await http.post(f"{url}/touchpoint", json={"msisdn": B})).json()
            assert [o["campaign_id"] for o in first["offers"]] == ["one"]
            assert first["not_offered"] == {"two": "cap.channel.day"}
            second = (await http.post(f"{url}/touchpoint", json={"msisdn": B})).json()
            assert second["offers"] == [] and len(second["not_offered"]) == 2


async def test_feedback_complaint_and_acceptance_at_the_counter(tmp_path):
    """A complaint puts the number on the complaint-sensitive list at once (the next
    touchpoint offers nothing); an acceptance at the counter places the BOSS order (JSON)
    and the subscriber gets the result SMS."""
    async with open_fake_boss("json") as boss, open_smsc_simulator(receipt_delay=0.01) as smsc:
        extra = JSON_ORDER.format(port=boss.port) + SMSC.format(port=smsc.port)
        async with open_gateway(tmp_path / "gw", ws_config(tmp_path, extra)) as gw:
            url = f"http://127.0.0.1:{http_port(gw)}/boss"
            async with httpx.AsyncClient(
                headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:
                body = {"work_order": "W", "campaign": campaign("spring"), "targets": [A, B]}
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
                await run(gw, "spring", "approve", "start")
                # The batch may finish (and leave the counter's offers) at any moment; the
                # counter's view after the complaint is checked on a campaign that stays running.
                counter = campaign("counter", kind="realtime", trigger={"events": ["power_on"]})
                body = {"work_order": "W2", "campaign": counter}
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
                await run(gw, "counter", "approve", "start")
                r = await http.post(
                    f"{url}/feedback",
                    json={"kind": "accepted", "msisdn": A, "campaign_id": "spring"},
                )
                assert r.status_code == 200
                await wait_until(lambda: any("is yours" in str(t) for t in smsc.texts()))
                assert [o[:2] for o in boss.orders.values()] == [(A, "DATA1G10")]
                assert await ORDERS.service.book.counts() == {"placed": 1}

                r = await http.post(
                    f"{url}/feedback", json={"kind": "complaint", "msisdn": B, "note": "spam"}
                )
                assert r.status_code == 200
                lists = gw.gateway.contact_control.lists
                assert [e["category"] for e in lists.entries_for(B)] == ["complaint_sensitive"]
                r = await http.post(f"{url}/touchpoint", json={"msisdn": B})
                assert r.json()["offers"] == []
                assert r.json()["not_offered"]["counter"] == "dnd.complaint_sensitive"
                r = await http.post(f"{url}/feedback", json={"kind": "maybe", "msisdn": B})
                assert r.status_code == 400


@pytest.mark.parametrize("crm_up", [True, False])
async def test_outbound_dispatch_to_the_crm_is_one_unit(tmp_path, crm_up):
    """The target list goes to the CRM as a file plus a call: both done, or (the CRM failing
    every try) the file is removed again and the dispatch is withdrawn."""
    from gateway.testing.boss import open_fake_crm

    async with open_fake_crm() as crm:
        if not crm_up:
            crm.fail_next = 100
        inbox = tmp_path / "crm-inbox"
        extra = f"""
[plugins.boss_ws.crm]
url = "http://127.0.0.1:{crm.port}/pool"
drop_dir = "{inbox}"
attempts = 3
backoff = "0.01s"
"""
        async with open_gateway(tmp_path / "gw", ws_config(tmp_path, extra)) as gw:
            url = f"http://127.0.0.1:{http_port(gw)}/boss"
            async with httpx.AsyncClient(
                headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:
                body = {"work_order": "W", "campaign": campaign("spring"), "targets": [A, B]}
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
                r = await http.post(f"{url}/crm/dispatch", json={"campaign_id": "spring"})
                assert r.status_code == 202
                did = r.json()["dispatch_id"]

                async def final():
                    r = await http.get(f"{url}/crm/dispatch", params={"id": did})
                    return r.json() if r.json()["state"] in ("done", "withdrawn") else None

                row = await wait_until(final)
        if crm_up:
            assert row["state"] == "done" and row["count"] == 2
            (call,) = [c for _, c in crm.calls]
            data = (inbox / call["file"]).read_bytes()
            assert data.decode().split() == [A, B]
            assert call["sha256"] == hashlib.sha256(data).hexdigest()
        else:
            assert row["state"] == "withdrawn" and row["attempts"] == 3
            assert "HTTP 500" in row["last_error"]
            assert list(inbox.iterdir()) == []
            assert crm.requests == 3


async def test_reload_applies_limits_and_keeps_restart_keys(tmp_path):
    """A reload takes a new max_inline_targets at once; a new path_prefix waits for a restart."""
    async with open_gateway(tmp_path / "gw", ws_config(tmp_path)) as gw:
        url = f"http://127.0.0.1:{http_port(gw)}/boss"
        text = gw.config_path.read_text()
        gw.config_path.write_text(
            text.replace("max_inline_targets = 3", "max_inline_targets = 1").replace(
                "enabled = true", 'enabled = true\npath_prefix = "/other"'
            )
        )
        assert gw.daemon.reload() is None
        assert "plugins.boss_ws.path_prefix" in gw.daemon.restart_required
        async with httpx.AsyncClient(headers={"X-Api-Key": "boss-crm-test-key-0123456789"}) as http:
            body = {"work_order": "W", "campaign": campaign("spring"), "targets": [A, B]}
            r = await http.post(f"{url}/campaigns", json=body)
            assert r.status_code == 400 and "more than 1" in r.json()["error"]


def test_the_webservices_are_never_served_without_authentication():
    """``auth`` takes "any", "key" or "hmac" (default "any"); "none" is a config error, so a
    configuration cannot open the BOSS/CRM routes to anonymous callers."""
    from gateway.errors import ConfigError
    from plugins.boss_ws.config import parse_boss_ws_config

    assert parse_boss_ws_config({"enabled": True}, "plugins.boss_ws").auth == "any"
    assert parse_boss_ws_config({"enabled": True, "auth": "hmac"}, "plugins.boss_ws").auth == "hmac"
    with pytest.raises(ConfigError, match="auth"):
        parse_boss_ws_config({"enabled": True, "auth": "none"}, "plugins.boss_ws")


async def test_an_anonymous_caller_is_refused(tmp_path):
    """Without the CRM's API key the dispatch route answers 401 and nothing is created."""
    async with open_gateway(tmp_path / "gw", ws_config(tmp_path)) as gw:
        url = f"http://127.0.0.1:{http_port(gw)}/boss"
        async with httpx.AsyncClient() as anonymous:
            body = {"work_order": "W", "campaign": campaign("spring"), "targets": [A, B]}
            r = await anonymous.post(f"{url}/campaigns", json=body)
        assert r.status_code == 401
        assert gw.gateway.campaigns.get("spring") is None


async def test_crm_dispatch_interrupted_by_a_restart_is_finished_after_it(tmp_path):
    """A dispatch whose file is written but whose call has not succeeded when the gateway
    stops is resumed at the next start: the same file, one successful call."""
    from gateway.testing.boss import open_fake_crm

    async with open_fake_crm() as crm:
        crm.fail_next = 1000
        inbox = tmp_path / "crm-inbox"
        extra = f"""
[plugins.boss_ws.crm]
url = "http://127.0.0.1:{crm.port}/pool"
drop_dir = "{inbox}"
attempts = 20
backoff = "1s"
"""
        async with open_gateway(tmp_path / "gw", ws_config(tmp_path, extra)) as gw:
            url = f"http://127.0.0.1:{http_port(gw)}/boss"
            async with httpx.AsyncClient(
                headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:
                body = {"work_order": "W", "campaign": campaign("spring"), "targets": [A, B]}
                assert (await http.post(f"{url}/campaigns", json=body)).status_code == 201
                r = await http.post(f"{url}/crm/dispatch", json={"campaign_id": "spring"})
                did = r.json()["dispatch_id"]
                await wait_until(lambda: crm.requests >= 1)
                r = await http.get(f"{url}/crm/dispatch", params={"id": did})
                assert r.json()["state"] == "file_written"
        assert [p.name for p in inbox.iterdir()] == [f"{did}.txt"]
        crm.fail_next = 0
        async with open_gateway(tmp_path / "gw", ws_config(tmp_path, extra)) as gw:
            url = f"http://127.0.0.1:{http_port(gw)}/boss"
            async with httpx.AsyncClient(
                headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:

                async def done():
                    r = await http.get(f"{url}/crm/dispatch", params={"id": did})
                    return r.json()["state"] == "done"

                await wait_until(done)
        assert [c["dispatch_id"] for _, c in crm.calls] == [did]
        assert (inbox / f"{did}.txt").read_text().split() == [A, B]
