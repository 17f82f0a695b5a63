#!/usr/bin/env python3
"""Run the bundled SMSC simulator standalone (for demos, manual tests and benchmarks).

Speaks SMPP 3.4 over TCP (or TLS): binds with the given credentials, answers submit_sm with
message ids, sends delivery receipts after a delay, and can inject faults. Prints one JSON line
of statistics every ``--stats-interval`` seconds (and once at exit, on Ctrl-C or SIGTERM).

Examples::

    scripts/smsc_simulator.py --port 2775 --account gateway:secret --receipt-delay 1
    scripts/smsc_simulator.py --port 2775 --throttle-every 50 --drop-after 1000 --drop-times 1
    scripts/smsc_simulator.py --port 2775 --max-rate 5 --queue-full 8613900000001 --no-receipts
    scripts/smsc_simulator.py --port 2775 --mo 8613912345678:10086:Y --mo-interval 10
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.smpp.protocol import ESME_RMSGQFUL, ESME_RTHROTTLED
from adapters.smpp.simulator import SimulatorConfig, SmscSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2775)
    ap.add_argument(
        "--account",
        action="append",
        metavar="SYSTEM_ID:PASSWORD",
        help="credentials an ESME may bind with (repeatable; default gateway:secret)",
    )
    ap.add_argument("--system-id", default="SIMSMSC", help="our system_id in bind responses")
    ap.add_argument("--receipt-delay", type=float, default=1.0, help="seconds before a receipt")
    ap.add_argument("--no-receipts", action="store_true")
    ap.add_argument("--no-receipt-tlvs", action="store_true", help="receipt text only, no TLVs")
    ap.add_argument(
        "--undeliverable-prefix",
        action="append",
        default=[],
        metavar="DIGITS",
        help="receipts for these destinations say UNDELIV",
    )
    ap.add_argument(
        "--reject-prefix",
        action="append",
        default=[],
        metavar="DIGITS:STATUS",
        help="answer submit_sm for these destinations with an error (hex or decimal)",
    )
    ap.add_argument(
        "--queue-full",
        action="append",
        default=[],
        metavar="DIGITS[:COUNT]",
        help="answer ESME_RMSGQFUL for these destinations, COUNT times (default: always)",
    )
    ap.add_argument("--no-query-sm", action="store_true", help="answer query_sm with generic_nack")
    ap.add_argument("--response-delay", type=float, default=0.0, help="hold each submit_sm_resp")
    ap.add_argument("--throttle-every", type=int, default=0, help="throttle every Nth submit_sm")
    ap.add_argument("--throttle-status", choices=("throttled", "msgqful"), default="throttled")
    ap.add_argument("--max-rate", type=float, default=0.0, help="throttle above N submit_sm/s")
    ap.add_argument("--drop-after", type=int, default=0, help="drop a connection after N PDUs")
    ap.add_argument("--drop-times", type=int, default=1, help="... this many times")
    ap.add_argument("--enquire-link-interval", type=float, default=0.0)
    ap.add_argument(
        "--gsm-packed", action="store_true", help="read data_coding 0 as packed septets"
    )
    ap.add_argument(
        "--mo",
        action="append",
        default=[],
        metavar="SRC:DST:TEXT",
        help="send this MO message once bound (repeated every --mo-interval if set)",
    )
    ap.add_argument("--mo-interval", type=float, default=0.0)
    ap.add_argument("--tls-cert", help="PEM certificate: serve TLS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--stats-interval", type=float, default=10.0)
    return ap.parse_args(argv)


def build(args: argparse.Namespace) -> SmscSimulator:
    accounts = dict(a.split(":", 1) for a in (args.account or ["gateway:secret"]))
    rejects = {}
    for item in args.reject_prefix:
        prefix, _, status = item.partition(":")
        rejects[prefix] = int(status, 0) if status else 0x0B
    queue_full = {}
    for item in args.queue_full:
        prefix, _, count = item.partition(":")
        queue_full[prefix] = int(count) if count else -1
    config = SimulatorConfig(
        credentials=accounts,
        system_id=args.system_id,
        receipt_delay=None if args.no_receipts else args.receipt_delay,
        receipt_tlvs=not args.no_receipt_tlvs,
        undeliverable_prefixes=tuple(args.undeliverable_prefix),
        response_delay=args.response_delay,
        throttle_every=args.throttle_every,
        throttle_status=ESME_RTHROTTLED if args.throttle_status == "throttled" else ESME_RMSGQFUL,
        max_rate=args.max_rate,
        reject_prefixes=rejects,
        queue_full=queue_full,
        query_sm=not args.no_query_sm,
        drop_after_pdus=args.drop_after,
        drop_times=args.drop_times if args.drop_after else 0,
        enquire_link_interval=args.enquire_link_interval,
        gsm_packed=args.gsm_packed,
    )
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return SmscSimulator(config, ssl_context=ctx)


def stats(sim: SmscSimulator) -> dict:
    return {
        "port": sim.port,
        "bound": sim.bound(),
        "accepted": len(sim.submitted),
        "max_outstanding": sim.max_outstanding,
        "pending_deliveries": sim.pending_deliveries,
        **sim.stats,
    }


async def main(args: argparse.Namespace) -> None:
    sim = build(args)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sim.serve, args.host, args.port)
        print(
            json.dumps({"event": "simulator.listening", "host": args.host, "port": port}),
            flush=True,
        )

        async def report() -> None:
            while True:
                await trio.sleep(args.stats_interval)
                print(json.dumps({"event": "simulator.stats", **stats(sim)}), flush=True)

        async def send_mo() -> None:
            while not sim.bound():  # noqa: ASYNC110 - waits for a bind
                await trio.sleep(0.1)
            while True:
                for item in args.mo:
                    src, dst, text = item.split(":", 2)
                    await sim.send_mo(src, dst, text)
                if not args.mo_interval:
                    return
                await trio.sleep(args.mo_interval)

        nursery.start_soon(report)
        if args.mo:
            nursery.start_soon(send_mo)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        print(json.dumps({"event": "simulator.stopped", **stats(sim)}), flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, parse_args())
