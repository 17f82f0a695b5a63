#!/usr/bin/env python3
"""Benchmark of WAP Push: encodings/s of the codec and pushes/s through the channel.

Usage: bench_wap.py [--encodings N] [--pushes N] [--quick]

Variants, measured in the same run:

- ``encode_si``, ``encode_sl``: a typical SI (58-character href, 30-character text,
  8-character si-id, created and si-expires dates: one SMS) and SL, document -> WBXML ->
  WSP push -> WDP SMS user data;
  encodings/s over N (default 100,000; --quick: 10,000). ``decode_si``: the reverse.
- ``through_channel``: the whole ``wap_push`` channel: N pushes (default 20,000; --quick:
  2,000) enqueued in the durable outbox (SQLite in a temporary directory,
  ``synchronous=normal``), taken, encoded, marked sending, submitted over one SMPP bind with
  window 64 to the bundled SMSC simulator (its own process, no receipts), and recorded as
  submitted: pushes/s end to end and commits per push.
- ``through_channel_tracked``: the same with click tracking on (one link row per push,
  written in the batch's group commit before sending).
- ``through_ppg``: ``transport = "ppg"``: the same pushes submitted as PAP 2.0 push-messages
  over HTTP (httpx, 16 in flight) to a minimal PPG in this process that answers 1001.

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.wap import push  # noqa: E402
from adapters.wap.wbxml import ServiceIndication, ServiceLoading  # noqa: E402

UTC = dt.UTC
SI = ServiceIndication(
    href="http://www.example.com/offers/spring-2026?campaign=c12&u=42",
    text="Spring offer: 2 GB for 10 yuan",
    si_id="X2d7e9a1",
    created=dt.datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC),
    expires=dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC),
    action="signal-medium",
)
SL = ServiceLoading(href="https://www.example.com/app/update?v=2", action="execute-low")


def bench_codec(n: int) -> dict:
    out = {}
    for name, doc in (("encode_si", SI), ("encode_sl", SL)):
        t0 = time.perf_counter()
        for i in range(n):
            parts = push.encode(doc, transaction_id=i & 0xFF, reference=i & 0xFF)
        elapsed = time.perf_counter() - t0
        out[name] = {
            "encodings": n,
            "encodings_per_s": round(n / elapsed, 1),
            "sms_per_push": len(parts),
            "octets": sum(len(p) for p in parts),
        }
    parts = push.encode(SI)
    t0 = time.perf_counter()
    for _ in range(n):
        push.decode(parts)
    elapsed = time.perf_counter() - t0
    out["decode_si"] = {"decodings": n, "decodings_per_s": round(n / elapsed, 1)}
    return out


def start_simulator() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "smsc_simulator.py"),
            "--port",
            "0",
            "--no-receipts",
            "--stats-interval",
            "3600",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["port"]


async def serve_fake_ppg(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A keep-alive HTTP/1.1 server answering every push-message with PAP 1001."""
    reply = (
        b'<?xml version="1.0"?><pap><push-response push-id="x">'
        b'<response-result code="1001" desc="Accepted for processing"/></push-response></pap>'
    )
    response = (
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/xml\r\n"
        + f"Content-Length: {len(reply)}\r\n\r\n".encode()
        + reply
    )

    async def connection(stream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                buffer = buffer[length:]
                await stream.send_all(response)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(connection, listeners)


async def through_channel(port: int, pushes: int, *, tracked: bool, ppg: bool = False) -> dict:
    from gateway.app import Gateway
    from gateway.model import ContactDecision, ContactRequest, Outcome
    from gateway.outbox import OutboxConfig, open_outbox
    from plugins.wap_push.channel import WapPushChannel
    from plugins.wap_push.config import parse_wap_push_config
    from plugins.wap_push.tracking import LinkTracker

    class Hooks:
        submitted = 0
        finished = trio.Event()

        def gateway_delivery_report(self, delivery) -> None:
            Hooks.submitted += 1
            if Hooks.submitted >= pushes:
                Hooks.finished.set()

    table: dict = {
        "smsc": {
            "host": "127.0.0.1",
            "port": port,
            "system_id": "gateway",
            "password": "secret",
            "window": 64,
            "registered_delivery": 0,
            "enquire_link_interval": "0s",
            "source_addr": "10086",
        },
        "si_expires_after": "2d",
    }
    if tracked:
        table |= {"track_clicks": True, "tracking_url": "https://gw.example.com/w"}
    if ppg:
        table = {
            "transport": "ppg",
            "si_expires_after": "2d",
            "ppg": {"url": f"http://127.0.0.1:{port}/pap", "max_in_flight": 16},
        }
    config = parse_wap_push_config(table)
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(
            config=SimpleNamespace(sections={}, plugins={}),  # type: ignore[arg-type]
            hook=Hooks(),  # type: ignore[arg-type]
            state_dir=Path(tmp),
        )
        async with open_outbox(
            Path(tmp) / "gateway.sqlite", OutboxConfig(), gateway=gw, synchronous="normal"
        ) as ob:
            gw.outbox = ob
            now = time.time()
            for start in range(0, pushes, 5000):
                await ob.enqueue_many(
                    [
                        ContactDecision(
                            request=ContactRequest(
                                contact_id=f"w{i}",
                                msisdn=f"86138{i:08d}",
                                campaign_id="bench",
                                channel="wap_push",
                                content={"href": SI.href or "", "text": SI.text},
                            ),
                            outcome=Outcome.ALLOWED,
                            decided_at=now,
                        )
                        for i in range(start, min(start + 5000, pushes))
                    ]
                )
            commits0 = ob.writer.commits
            tracker = LinkTracker(gw, base_url=config.tracking_url) if tracked else None
            channel = WapPushChannel(gw, config, tracker=tracker)
            async with trio.open_nursery() as nursery:
                t0 = time.perf_counter()
                await nursery.start(channel.run)
                await Hooks.finished.wait()
                elapsed = time.perf_counter() - t0
                nursery.cancel_scope.cancel()
            commits = ob.writer.commits - commits0
    return {
        "pushes": pushes,
        "seconds": round(elapsed, 3),
        "pushes_per_s": round(pushes / elapsed, 1),
        "commits_per_push": round(commits / pushes, 3),
        "submitted": channel.stats["submitted"] or channel.statistics().get("ppg_accepted", 0),
    }


async def through_ppg(pushes: int) -> dict:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_fake_ppg)
        result = await through_channel(port, pushes, tracked=False, ppg=True)
        nursery.cancel_scope.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encodings", type=int, default=None)
    parser.add_argument("--pushes", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    encodings = args.encodings or (10_000 if args.quick else 100_000)
    pushes = args.pushes or (2_000 if args.quick else 20_000)
    result: dict = {"quick": args.quick, **bench_codec(encodings)}
    print(json.dumps({k: result[k] for k in ("encode_si", "encode_sl")}), flush=True)
    proc, port = start_simulator()
    try:
        result["through_channel"] = trio.run(lambda: through_channel(port, pushes, tracked=False))
        print(json.dumps({"through_channel": result["through_channel"]}), flush=True)
        result["through_channel_tracked"] = trio.run(
            lambda: through_channel(port, pushes, tracked=True)
        )
        print(
            json.dumps({"through_channel_tracked": result["through_channel_tracked"]}), flush=True
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result["through_ppg"] = trio.run(through_ppg, pushes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
