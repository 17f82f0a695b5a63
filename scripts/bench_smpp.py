#!/usr/bin/env python3
"""Benchmark of the SMPP client: submit_sm/s through one bind against the bundled simulator.

Usage: bench_smpp.py [--messages N] [--quick] [--cap RATE] [--cap-seconds S]
                    [--host H --port P --system-id ID --password PW]

The simulator runs in its own process (``scripts/smsc_simulator.py``, no receipts), so client
and SMSC each have a core. With ``--host`` the benchmark targets that SMSC instead (an
independent one, or a test SMSC of the operator: mind its contract, use ``--cap``); the
``simulator_ceiling`` variant is then skipped. Variants, measured in the same run:

- ``window_1``, ``window_10``, ``window_64``: one transceiver bind, uncapped, N messages of
  one segment each (default 50,000; --quick: 5,000); submit_sm/s from the first submit to
  the last answer, as our client sees it (encode with smpplib, frame, window, decode answers).
- ``capped``: window 64 with the account capped at ``--cap`` (default 2,000/s), measured over
  ``--cap-seconds`` (default 10; --quick: 3) after 0.5 s of warm-up: the rate and its error
  against the cap.
- ``through_outbox``: the whole channel: N messages enqueued in the durable outbox (SQLite in a
  temporary directory, ``synchronous=normal``), taken, marked sending, submitted over one bind
  with window 64, and recorded as submitted: messages/s end to end, and commits per message.
- ``through_outbox_receipts`` (bundled simulator only): the same with a delivery receipt per
  message (sent 0.1 s after the submit): messages/s until every receipt is recorded.
- ``codec``: microseconds per PDU for the hot PDUs, smpplib (the reference) against our fast
  path (``adapters/smpp/fastpdu.py``) in the same run: submit_sm encoding, deliver_sm (a
  receipt) decoding into our event; ``speedup_vs_smpplib`` for each.
- ``simulator_ceiling``: a raw client that blasts pre-encoded submit_sm PDUs (1,000 in flight)
  at the same simulator and counts answers: the most the simulator can take, so that the
  window figures are known to measure the client, not the simulator.

``speedup_vs_window_1`` compares window 64 to window 1. ``submit_sm_per_cpu_s`` divides by this
process's CPU time, and ``cpu_us_per_message`` is its inverse: the client's cost, robust to other
processes sharing the machine. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.smpp import fastpdu  # noqa: E402
from adapters.smpp import protocol as p  # noqa: E402
from adapters.smpp.messages import encode_text  # noqa: E402
from adapters.smpp.transport import BindSettings, BindState, SmscAccount, SubmitJob, run_bind  # noqa: E402


class CountingHandler:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.finished = trio.Event()
        self.last = 0.0
        self.refused = ""

    async def before_send(self, jobs) -> None:
        return None

    def on_result(self, job) -> None:
        self.done += 1
        if job.status is not None:
            self.failed += 1
        job.settle()
        if self.done >= self.total:
            self.last = time.perf_counter()
            self.finished.set()

    async def on_deliver(self, event, bind) -> int:
        return 0

    def on_event(self, event, **fields) -> None:
        if event == "smpp.bind_failed":  # wrong credentials: stop rather than retry forever
            self.refused = str(fields.get("status", ""))
            self.finished.set()
        if event not in ("smpp.bind_ok", "smpp.unbound"):
            print(
                json.dumps({"event": event, **{k: str(v) for k, v in fields.items()}}),
                file=sys.stderr,
            )


def start_simulator(receipt_delay: float | None = None) -> tuple[subprocess.Popen, int]:
    receipts = ["--receipt-delay", str(receipt_delay)] if receipt_delay is not None else []
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "smsc_simulator.py"),
            "--port",
            "0",
            *(receipts or ["--no-receipts"]),
            "--stats-interval",
            "3600",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, json.loads(line)["port"]


async def run_client(
    smsc: dict,
    *,
    window: int,
    messages: int,
    rate: float = 0.0,
    seconds: float | None = None,
) -> dict:
    fields = dict(
        source_addr="10086",
        source_addr_ton=5,
        destination_addr="8613800000000",
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=0,
        **encode_text("Your bill for November is ready.")[0].pdu_fields(),
    )
    handler = CountingHandler(messages)
    settings = BindSettings(
        **smsc,
        window=window,
        enquire_link_interval=0,
        request_timeout=30,
    )
    account = SmscAccount("bench", settings, handler, rate=rate, max_pending=max(4 * window, 1024))
    state = BindState("bench/0", "transceiver")
    account.binds.append(state)
    cpu0 = time.process_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_bind, account, state)
        t0 = time.perf_counter()

        async def feed() -> None:
            for i in range(messages):
                await account.submit(SubmitJob(key=str(i), segments=[fields]))

        nursery.start_soon(feed)
        if handler.refused:
            raise SystemExit(f"bind refused by {smsc['host']}:{smsc['port']}: {handler.refused}")
        if seconds is None:
            await handler.finished.wait()
            if handler.refused:
                raise SystemExit(
                    f"bind refused by {smsc['host']}:{smsc['port']}: {handler.refused}"
                )
            elapsed = handler.last - t0
            done = handler.done
        else:
            await trio.sleep(0.5)  # steady state only: skip the bucket's initial burst
            first, t1 = handler.done, time.perf_counter()
            await trio.sleep(seconds)
            done = handler.done - first
            elapsed = time.perf_counter() - t1
        nursery.cancel_scope.cancel()
    cpu = time.process_time() - cpu0
    out = {
        "messages": done,
        "seconds": round(elapsed, 3),
        "submit_sm_per_s": round(done / elapsed, 1),
        "failed": handler.failed,
        "client_cpu_s": round(cpu, 3),
        "submit_sm_per_cpu_s": round(done / cpu, 1) if cpu else None,
        "cpu_us_per_message": round(1e6 * cpu / done, 1) if done else None,
    }
    if rate:
        out["cap_per_s"] = rate
        out["error_vs_cap_pct"] = round(100 * (done / elapsed - rate) / rate, 2)
    return out


async def run_through_outbox(smsc: dict, messages: int, *, receipts: bool = False) -> dict:
    import tempfile
    from types import SimpleNamespace

    from gateway.app import Gateway
    from gateway.model import ContactDecision, ContactRequest, Outcome
    from gateway.outbox import OutboxConfig, open_outbox
    from plugins.sms_smpp.channel import SmsChannel
    from plugins.sms_smpp.config import parse_sms_config

    class Hooks:
        submitted = 0
        finished = trio.Event()

        def gateway_delivery_report(self, delivery) -> None:
            if receipts and not delivery.state.final:
                return  # with receipts, a message is done when its receipt is recorded
            Hooks.submitted += 1
            if Hooks.submitted >= messages:
                Hooks.finished.set()

        def gateway_mo_message(self, message) -> None:
            pass

    config = parse_sms_config(
        {
            "smsc": [
                {
                    "name": "sim",
                    **smsc,
                    "window": 64,
                    "registered_delivery": 1 if receipts else 0,
                    "enquire_link_interval": 0,
                    "source_addr": "10086",
                }
            ]
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(
            config=SimpleNamespace(sections={}, plugins={}), hook=Hooks(), state_dir=Path(tmp)
        )
        async with open_outbox(
            Path(tmp) / "gateway.sqlite", OutboxConfig(), gateway=gw, synchronous="normal"
        ) as ob:
            gw.outbox = ob
            now = time.time()
            for start in range(0, messages, 5000):
                await ob.enqueue_many(
                    [
                        ContactDecision(
                            request=ContactRequest(
                                contact_id=f"b{i}",
                                msisdn=f"86138{i:08d}",
                                campaign_id="bench",
                                channel="sms",
                                content={"text": "Your bill is ready."},
                            ),
                            outcome=Outcome.ALLOWED,
                            decided_at=now,
                        )
                        for i in range(start, min(start + 5000, messages))
                    ]
                )
            commits0 = ob.writer.commits
            cpu0 = time.process_time()
            async with trio.open_nursery() as nursery:
                t0 = time.perf_counter()
                await nursery.start(SmsChannel(gw, config).run)
                await Hooks.finished.wait()
                elapsed = time.perf_counter() - t0
                nursery.cancel_scope.cancel()
            commits = ob.writer.commits - commits0
            cpu = time.process_time() - cpu0
    return {
        "messages": messages,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(messages / elapsed, 1),
        "commits_per_message": round(commits / messages, 3),
        # this process: event loop and SQLite threads together
        "cpu_us_per_message": round(1e6 * cpu / messages, 1),
    }


def simulator_ceiling(port: int, messages: int, in_flight: int = 1000) -> dict:
    """Blast pre-encoded submit_sm PDUs over a plain socket and count the answers."""
    sock = socket.create_connection(("127.0.0.1", port))  # the bundled simulator only
    sock.sendall(p.encode_pdu("bind_transceiver", 1, system_id="gateway", password="secret"))
    sock.recv(4096)
    fields = dict(
        source_addr="10086",
        destination_addr="8613800000000",
        **encode_text("Your bill for November is ready.")[0].pdu_fields(),
    )
    template = p.encode_pdu("submit_sm", 1, **fields)
    batch = 100
    chunk = b"".join(template[:12] + struct.pack(">I", 2 + i) + template[16:] for i in range(batch))
    sent = answered = 0
    buf = b""
    t0 = time.perf_counter()
    while answered < messages:
        while sent - answered < in_flight and sent < messages:
            sock.sendall(chunk)
            sent += batch
        data = sock.recv(1 << 20)
        buf += data
        pos = 0
        while len(buf) - pos >= 16:
            (length,) = struct.unpack_from(">I", buf, pos)
            if len(buf) - pos < length:
                break
            pos += length
            answered += 1
        buf = buf[pos:]
    elapsed = time.perf_counter() - t0
    sock.close()
    return {
        "messages": answered,
        "seconds": round(elapsed, 3),
        "submit_sm_per_s": round(answered / elapsed, 1),
    }


def codec_micro(n: int) -> dict:
    """µs per PDU: smpplib vs the fast path, for the PDUs every message costs."""
    fields = dict(
        source_addr="10086",
        source_addr_ton=5,
        destination_addr="8613800000000",
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=1,
        **encode_text("Your bill for November is ready.")[0].pdu_fields(),
    )
    receipt = fastpdu.encode_deliver_sm(
        7,
        dict(
            source_addr="8613800000000",
            destination_addr="10086",
            esm_class=4,
            short_message=b"id:00000A1B2C sub:001 dlvr:001 submit date:2611300300 "
            b"done date:2611300300 stat:DELIVRD err:000 text:",
            receipted_message_id="00000A1B2C",
            message_state=2,
        ),
    )

    def slow_receipt():
        pdu = p.decode_pdu(receipt)
        return p.deliver_event(lambda name: getattr(pdu, name, None), 7)

    cases = {
        "submit_sm_encode": (
            lambda: p.encode_pdu("submit_sm", 5, **fields),
            lambda: fastpdu.encode_submit_sm(5, fields),
        ),
        "deliver_sm_decode": (
            slow_receipt,
            lambda: p.deliver_event(fastpdu.parse_sm_fields(receipt).get, 7),
        ),
    }
    out = {}
    for name, (slow, fast) in cases.items():
        assert slow() == fast()
        times = {}
        for label, fn in (("smpplib", slow), ("fast", fast)):
            t0 = time.process_time()
            for _ in range(n):
                fn()
            times[label] = (time.process_time() - t0) / n * 1e6
        out[name] = {
            "smpplib_us": round(times["smpplib"], 2),
            "fast_us": round(times["fast"], 2),
            "speedup_vs_smpplib": round(times["smpplib"] / times["fast"], 1),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int)
    ap.add_argument("--quick", action="store_true", help="5,000 messages per variant, 3 s capped")
    ap.add_argument("--cap", type=float, default=2000.0)
    ap.add_argument("--cap-seconds", type=float)
    ap.add_argument("--host", help="an external SMSC (default: start the bundled simulator)")
    ap.add_argument("--port", type=int, default=2775, help="with --host (default 2775)")
    ap.add_argument("--system-id", default="gateway", help="bind system_id (default gateway)")
    ap.add_argument("--password", default="secret", help="bind password (default secret)")
    args = ap.parse_args()
    messages = args.messages or (5_000 if args.quick else 50_000)
    cap_seconds = args.cap_seconds or (3.0 if args.quick else 10.0)
    proc = None
    if args.host:
        host, port = args.host, args.port
    else:
        proc, port = start_simulator()
        host = "127.0.0.1"
    smsc = {"host": host, "port": port, "system_id": args.system_id, "password": args.password}
    result: dict = {
        "quick": args.quick,
        "messages_per_variant": messages,
        "cpu_count": os.cpu_count(),
        "smsc": "bundled simulator" if proc else f"{host}:{port}",
    }
    try:
        for window in (1, 10, 64):
            n = messages if window > 1 else max(messages // 5, 1000)
            result[f"window_{window}"] = trio.run(
                lambda w=window, n=n: run_client(smsc, window=w, messages=n)
            )
            print(json.dumps({f"window_{window}": result[f"window_{window}"]}), flush=True)
        result["capped"] = trio.run(
            lambda: run_client(smsc, window=64, messages=10**9, rate=args.cap, seconds=cap_seconds)
        )
        print(json.dumps({"capped": result["capped"]}), flush=True)
        n_outbox = max(messages // 2, 1000)
        result["through_outbox"] = trio.run(lambda: run_through_outbox(smsc, n_outbox))
        print(json.dumps({"through_outbox": result["through_outbox"]}), flush=True)
        if proc is not None:
            rproc, rport = start_simulator(receipt_delay=0.1)
            try:
                result["through_outbox_receipts"] = trio.run(
                    lambda: run_through_outbox({**smsc, "port": rport}, n_outbox, receipts=True)
                )
            finally:
                rproc.terminate()
                rproc.wait(10)
            print(json.dumps({"through_outbox_receipts": result["through_outbox_receipts"]}))
            result["simulator_ceiling"] = simulator_ceiling(port, messages * 2)
        result["codec"] = codec_micro(messages)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    w64 = result["window_64"]["submit_sm_per_s"]
    result["speedup_vs_window_1"] = round(w64 / result["window_1"]["submit_sm_per_s"], 1)
    result["target_submit_sm_per_s"] = 5000
    result["target_met"] = w64 >= 5000
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
