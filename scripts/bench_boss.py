#!/usr/bin/env python3
"""Benchmark of the BOSS/CRM interfaces: product orders/s and touchpoint queries/s.

Usage: bench_boss.py [--orders N] [--queries N] [--quick]

A real gateway in this process (SQLite state in a temporary directory), the fake BOSS of
``gateway.testing.boss`` on loopback (same process), no SMS channel (the result SMS is
decided by contact control and queued in the outbox, not sent).

- ``orders_soap``, ``orders_json``: N acceptances (default 2,000; --quick: 200) fired through
  ``gateway_offer_accepted``; orders/s from the first acceptance until every order is placed
  at the BOSS and its result SMS queued (durable order book, one order in flight at a time).
- ``touchpoint``: N queries (default 2,000; --quick: 200) over HTTP from 8 concurrent
  clients, 20 running campaigns (half with a profile predicate, half with a 10,000-number
  target list), 1,000 profiles; queries/s and p99 latency (the httpx client runs in the same
  process and costs more CPU than the gateway's side), and ``handler_queries_per_s``: the
  touchpoint handler called directly, without HTTP.

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.contracts import HttpRequest  # noqa: E402
from gateway.model import Acceptance  # noqa: E402
from gateway.testing import open_gateway, wait_until  # noqa: E402
from gateway.testing.boss import open_fake_boss  # noqa: E402
from plugins.boss_orders import RUNNING  # noqa: E402
from plugins.boss_ws import RUNNING as WS  # noqa: E402
from plugins.boss_ws.touchpoint import touchpoint  # noqa: E402
from tests.plugins.boss_harness import JSON_ORDER, SOAP_ORDER  # noqa: E402


async def bench_orders(protocol: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_fake_boss(protocol) as boss:
            config = (SOAP_ORDER if protocol == "soap" else JSON_ORDER).format(port=boss.port)
            async with open_gateway(Path(tmp) / "gw", config) as gw:
                started = time.perf_counter()
                for i in range(n):
                    gw.gateway.hook.gateway_offer_accepted(
                        acceptance=Acceptance(
                            contact_id=f"c{i}",
                            campaign_id="spring",
                            msisdn=f"86138{i:08d}",
                            channel="sms",
                            answer="Y",
                            at=time.time(),
                        )
                    )
                book = RUNNING.service.book

                async def done() -> bool:
                    rows = await book.worker.run(
                        lambda c: c.execute(
                            "SELECT COUNT(*) FROM boss_orders WHERE state='placed' AND sms='queued'"
                        ).fetchone()[0]
                    )
                    return rows == n

                await wait_until(done, within=600, interval=0.05)
                elapsed = time.perf_counter() - started
                assert len(boss.orders) == n
        return {"orders": n, "seconds": round(elapsed, 2), "orders_per_s": round(n / elapsed, 1)}


async def bench_touchpoint(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows = ["msisdn,imsi,brand,plan"]
        rows += [
            f"86138{i:08d},4600{i:011d},{'gotone' if i % 2 else 'mzone'},G58" for i in range(1000)
        ]
        (base / "profiles.csv").write_text("\n".join(rows) + "\n")
        config = f"""
[http]
listen = "127.0.0.1:0"
[http.clients.crm]
api_key = "boss-crm-test-key-0123456789"

[profiles]
file = "{base / "profiles.csv"}"

[plugins.boss_ws]
enabled = true
max_inline_targets = 10000
"""
        async with open_gateway(base / "gw", config) as gw:
            (host,) = [t.obj for t in gw.daemon.supervisor.tasks if t.name == "http"]
            url = f"http://127.0.0.1:{host.port}/boss"
            targets = [f"86138{i:08d}" for i in range(0, 20000, 2)]
            async with httpx.AsyncClient(
                timeout=60, headers={"X-Api-Key": "boss-crm-test-key-0123456789"}
            ) as http:
                for k in range(20):
                    table = {
                        "id": f"c{k}",
                        "name": f"c{k}",
                        "kind": "realtime" if k % 2 else "batch",
                        "priority": k,
                        "channels": ["sms"],
                        "content": {"sms": {"text": "offer {brand|}"}},
                    }
                    body: dict = {"work_order": f"w{k}", "campaign": table}
                    if k % 2:
                        table["trigger"] = {
                            "events": ["power_on"],
                            "conditions": [
                                {"type": "profile", "attribute": "brand", "equals": "gotone"}
                            ],
                        }
                    else:
                        body["targets"] = targets
                    r = await http.post(f"{url}/campaigns", json=body)
                    r.raise_for_status()
                    await gw.command("campaigns", "approve", f"c{k}")
                    await gw.command("campaigns", "start", f"c{k}")
                latencies: list[float] = []

                async def client(start: int) -> None:
                    for i in range(start, n, 8):
                        t0 = time.perf_counter()
                        r = await http.post(
                            f"{url}/touchpoint", json={"msisdn": f"86138{i % 1000:08d}"}
                        )
                        r.raise_for_status()
                        latencies.append(time.perf_counter() - t0)

                started = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for c in range(8):
                        nursery.start_soon(client, c)
                elapsed = time.perf_counter() - started
            # the handler alone (no HTTP, no client in this process): what the gateway spends
            ws = WS.service
            handler_started = time.perf_counter()
            for i in range(n):
                body = json.dumps({"msisdn": f"86138{i % 1000:08d}"}).encode()
                answer = await touchpoint(
                    ws,
                    HttpRequest(
                        method="POST", path="/boss/touchpoint", query={}, headers={}, body=body
                    ),
                )
                assert answer.status == 200
            handler_elapsed = time.perf_counter() - handler_started
        latencies.sort()
        return {
            "queries": n,
            "queries_per_s": round(n / elapsed, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "handler_queries_per_s": round(n / handler_elapsed, 1),
        }


async def main(args: argparse.Namespace) -> dict:
    return {
        "quick": args.quick,
        "orders_soap": await bench_orders("soap", args.orders),
        "orders_json": await bench_orders("json", args.orders),
        "touchpoint": await bench_touchpoint(args.queries),
    }


if __name__ == "__main__":
    import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.orders = args.orders or (200 if args.quick else 2000)
    args.queries = args.queries or (200 if args.quick else 2000)
    logging.disable(logging.CRITICAL)
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    )
    print(json.dumps(trio.run(main, args)))
