#!/usr/bin/env python3
"""End-to-end benchmark of the write path: contact requests in, through the real SQLite contact
control and the durable outbox (one state database, one writer), out over SMPP to the bundled
SMSC simulator (its own process, a delivery receipt per message), until every receipt is recorded.

Usage: bench_path.py [--messages N] [--rate R] [--seconds S] [--synchronous full|normal] [--quick]

What enters is what the pipeline hands to contact control after matching: a batch of
ContactRequest per tick, given to ``decide_and_queue`` (decision, ledger row and outbox entry in
one transaction), exactly as ``gateway.pipeline.Pipeline.submit`` does. XDR parsing, profile
lookup and rule matching are not in this figure (``scripts/bench_match.py`` measures them).

Variants, in the same run:

- ``max``: N requests offered as fast as the outbox takes them (kept at most 20,000 ahead);
  messages/s from the first request to the last receipt recorded.
- ``rate``: R requests/s (default 5,000) for S seconds (default 10), in ticks of 10 ms;
  latency from the request's tick to its submit answer recorded (p50/p99/max), and whether
  the path kept up.

``cpu_us_per_message`` is this process's CPU time (event loop and SQLite thread) per message;
the simulator's own CPU is not in it. The machine is shared: CPU per message is the robust
figure. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_smpp import start_simulator  # noqa: E402

from gateway.app import Gateway  # noqa: E402
from gateway.contact import plugin as contact_plugin  # noqa: E402
from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.model import ContactRequest  # noqa: E402
from gateway.outbox import OutboxConfig  # noqa: E402
from gateway.outbox import plugin as outbox_plugin  # noqa: E402
from plugins.sms_smpp.channel import SmsChannel  # noqa: E402
from plugins.sms_smpp.config import parse_sms_config  # noqa: E402


class Hooks:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.final = 0
        self.target = 0
        self.done = trio.Event()

    def gateway_delivery_report(self, delivery: Any) -> None:
        if delivery.state.value == "submitted":
            t = self.sent_at.pop(delivery.contact_id, None)
            if t is not None:
                self.latencies.append(time.perf_counter() - t)
        elif delivery.state.final:
            self.final += 1
            if self.final >= self.target:
                self.done.set()

    def gateway_mo_message(self, message: Any) -> None:
        pass

    def gateway_contact_recorded(self, decision: Any) -> None:
        pass


@contextlib.asynccontextmanager
async def running(port: int, synchronous: str, hooks: Hooks, state: Path) -> Any:
    ocfg = OutboxConfig()
    ccfg = parse_contact_config({"timezone": "UTC", "synchronous": synchronous})
    config = SimpleNamespace(
        sections={"outbox": ocfg, "contact": ccfg},
        plugins={},
        gateway=SimpleNamespace(sqlite_synchronous=synchronous, timezone="UTC"),
    )
    gw = Gateway(config=config, hook=hooks, state_dir=state)
    sms = parse_sms_config(
        {
            "smsc": [
                {
                    "name": "sim",
                    "host": "127.0.0.1",
                    "port": port,
                    "system_id": "gateway",
                    "password": "secret",
                    "window": 64,
                    "registered_delivery": 1,
                    "enquire_link_interval": 0,
                    "source_addr": "10086",
                }
            ]
        }
    )
    async with contextlib.AsyncExitStack() as stores:
        for plugin in (contact_plugin, outbox_plugin):  # the daemon's order
            for store in plugin.gateway_stores(gateway=gw):
                await stores.enter_async_context(store)
        async with trio.open_nursery() as nursery:
            for service in outbox_plugin.gateway_services(gateway=gw):
                await nursery.start(service.run)
            await nursery.start(SmsChannel(gw, sms).run)
            yield gw
            nursery.cancel_scope.cancel()


def requests(start: int, n: int, tag: str) -> list[ContactRequest]:
    now = time.time()
    return [
        ContactRequest(
            contact_id=f"{tag}{i}",
            msisdn=f"86138{i:08d}",
            campaign_id="bench",
            channel="sms",
            content={"text": "Your bill is ready."},
            created_at=now,
        )
        for i in range(start, start + n)
    ]


async def run_max(port: int, messages: int, synchronous: str) -> dict[str, Any]:
    hooks = Hooks()
    hooks.target = messages
    with tempfile.TemporaryDirectory() as tmp:
        async with running(port, synchronous, hooks, Path(tmp)) as gw:
            control, outbox = gw.contact_control, gw.outbox
            cpu0, t0 = time.process_time(), time.perf_counter()
            commits0 = outbox.writer.commits
            sent = 0
            while sent < messages:
                if outbox.depth("sms") > 20_000:
                    await trio.sleep(0.005)
                    continue
                n = min(1000, messages - sent)
                batch = requests(sent, n, "m")
                now = time.perf_counter()
                for r in batch:
                    hooks.sent_at[r.contact_id] = now
                await control.decide_and_queue(batch, outbox)
                sent += n
            await hooks.done.wait()
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            commits = outbox.writer.commits - commits0
    return {
        "messages": messages,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(messages / elapsed, 1),
        "cpu_us_per_message": round(1e6 * cpu / messages, 1),
        "commits_per_message": round(commits / messages, 3),
        "target_messages_per_s": 10_000,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run_rate(port: int, rate: int, seconds: float, synchronous: str) -> dict[str, Any]:
    hooks = Hooks()
    total = int(rate * seconds)
    hooks.target = total
    tick = 0.01
    with tempfile.TemporaryDirectory() as tmp:
        async with running(port, synchronous, hooks, Path(tmp)) as gw:
            control, outbox = gw.contact_control, gw.outbox
            cpu0, t0 = time.process_time(), time.perf_counter()
            sent, k = 0, 0
            while sent < total:
                k += 1
                due = min(total, int(rate * k * tick))
                n = due - sent
                if n > 0:
                    batch = requests(sent, n, "r")
                    now = time.perf_counter()
                    for r in batch:
                        hooks.sent_at[r.contact_id] = now
                    await control.decide_and_queue(batch, outbox)
                    sent = due
                await trio.sleep_until(
                    trio.current_time() + max(0.0, t0 + k * tick - time.perf_counter())
                )
            offered = time.perf_counter() - t0
            with trio.move_on_after(30):
                await hooks.done.wait()
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
    lat = hooks.latencies
    return {
        "rate": rate,
        "messages": total,
        "offered_seconds": round(offered, 2),
        "seconds_to_last_receipt": round(elapsed, 2),
        "kept_up": offered < seconds * 1.05 and elapsed < seconds + 2.0,
        "submit_p50_ms": round(1e3 * pct(lat, 0.50), 2),
        "submit_p99_ms": round(1e3 * pct(lat, 0.99), 2),
        "submit_max_ms": round(1e3 * max(lat), 2) if lat else None,
        "cpu_us_per_message": round(1e6 * cpu / total, 1),
        "target_p99_ms": 100,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--synchronous", default="full", choices=("full", "normal"))
    ap.add_argument("--quick", action="store_true", help="20,000 messages, 4 s at the rate")
    args = ap.parse_args()
    messages = args.messages or (20_000 if args.quick else 100_000)
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    proc, port = start_simulator(receipt_delay=0.1)
    try:
        result = {
            "synchronous": args.synchronous,
            "max": trio.run(run_max, port, messages, args.synchronous),
            "rate": trio.run(run_rate, port, args.rate, seconds, args.synchronous),
        }
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
