"""A real gatewayd process: an acceptance at the CRM counter while the BOSS is down, the
daemon killed with SIGKILL, restarted with the BOSS back: the order is placed once and the
result SMS reaches the SMSC simulator."""

from __future__ import annotations

import sqlite3

import httpx
import trio

from gateway.testing import open_smsc_simulator, reserved_port, wait_until
from gateway.testing.boss import open_fake_boss
from tests.plugins.boss_harness import SMSC, SOAP_ORDER

A = "8613800000001"


def order_row(state_dir) -> tuple | None:
    path = state_dir / "boss_orders.db"
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT state, attempts, sms FROM boss_orders").fetchone()
    except sqlite3.OperationalError:  # table not created yet
        return None
    finally:
        conn.close()


async def test_pending_order_survives_kill_9_and_is_placed_when_the_boss_returns(
    gateway_config, gatewayd, short_tmp
):
    """Pending in the order book before the kill; placed once after the restart; SMS sent."""
    with reserved_port() as boss_port:  # refused until the fake BOSS starts on it
        campaigns = short_tmp / "campaigns"
        campaigns.mkdir()
        (campaigns / "spring.toml").write_text(
            'id = "spring"\nname = "spring"\nkind = "batch"\nchannels = ["sms"]\n'
            'initial_state = "running"\n[content.sms]\ntext = "1 GB, reply Y"\n'
        )
        async with open_smsc_simulator(receipt_delay=0.01) as smsc:
            config = gateway_config(
                SOAP_ORDER.format(port=boss_port)
                + SMSC.format(port=smsc.port)
                + f"""
[http]
listen = "127.0.0.1:0"
[http.clients.crm]
api_key = "boss-crm-test-key-0123456789"

[campaigns]
directory = "{campaigns}"

[plugins.boss_ws]
enabled = true
"""
            )
            first = gatewayd(config)
            await trio.to_thread.run_sync(first.wait_ready)
            (listening,) = await trio.to_thread.run_sync(first.wait_for_event, "http.listening")
            http_port = listening["port"]
            async with httpx.AsyncClient(
                headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:
                answer = await http.post(
                    f"http://127.0.0.1:{http_port}/boss/feedback",
                    json={"kind": "accepted", "msisdn": A, "campaign_id": "spring"},
                )
            assert answer.status_code == 200, answer.text
            state_dir = short_tmp / "state"
            await wait_until(lambda: (order_row(state_dir) or ("", 0))[1] >= 1)
            assert order_row(state_dir)[0] == "pending"
            await trio.to_thread.run_sync(first.kill)

            async with open_fake_boss("soap", port=boss_port) as boss:
                second = gatewayd(config)
                await trio.to_thread.run_sync(second.wait_ready)
                await wait_until(lambda: any("is yours" in str(t) for t in smsc.texts()))
                assert len(boss.orders) == 1 and boss.duplicates == 0
                assert order_row(state_dir) == ("placed", order_row(state_dir)[1], "queued")
                await trio.to_thread.run_sync(second.kill)
