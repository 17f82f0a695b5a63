#!/usr/bin/env python3
"""Benchmark of the IVR channel against the fake AMI and event-socket servers (real time).

Usage: bench_ivr.py [--calls N] [--rate R] [--concurrent C] [--quick]

For each backend (``ami``, ``esl``), the whole channel runs on the real SQLite contact
control and outbox (temporary directory), with the fake switch in the same process over
loopback TCP:

- ``paced``: N contacts (default 2,000; --quick 300) decided, queued and called on one trunk
  paced at R calls per second (default 100) with room for every call: ``calls_per_s`` is the
  originate rate the switch saw (first to last originate), ``pacing_error`` its relative
  error against R, ``calls_s`` the wall time until every contact was delivered.
- ``held``: C + 50 calls (C default 200; --quick 50) that stay up once answered, on a trunk
  allowing C at once (paced at 1,000/s): ``concurrent_held`` is the most the switch had up at
  once (must equal C, never above), ``fill_s`` the time to reach it.

The last line of stdout is one JSON object.
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

from gateway.app import Gateway  # noqa: E402
from gateway.contact import plugin as contact_plugin  # noqa: E402
from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.logging import configure_logging  # noqa: E402
from gateway.model import ContactRequest, Outcome  # noqa: E402
from gateway.outbox import OutboxConfig  # noqa: E402
from gateway.outbox import plugin as outbox_plugin  # noqa: E402
from gateway.presence import PresenceTracker  # noqa: E402
from gateway.testing.ami import open_fake_ami  # noqa: E402
from gateway.testing.esl import open_fake_esl  # noqa: E402
from gateway.testing.pbx import CallScript, FakePbx  # noqa: E402
from plugins.ivr.channel import IvrChannel  # noqa: E402
from plugins.ivr.config import parse_ivr_config  # noqa: E402


class Hooks:
    def __init__(self) -> None:
        self.final = 0
        self.done = trio.Event()
        self.target = 0

    def gateway_delivery_report(self, delivery: Any) -> None:
        if delivery.state.final:
            self.final += 1
            if self.final >= self.target:
                self.done.set()

    def gateway_offer_accepted(self, acceptance: Any) -> None:
        pass

    def gateway_contact_recorded(self, decision: Any) -> None:
        pass


@contextlib.asynccontextmanager
async def running(backend: str, trunk: dict, pbx: FakePbx, hooks: Hooks):
    state = Path(tempfile.mkdtemp(prefix="bench-ivr-"))
    config = SimpleNamespace(
        sections={
            "outbox": OutboxConfig(lease=3600.0),
            "contact": parse_contact_config({"timezone": "Asia/Shanghai", "synchronous": "normal"}),
        },
        plugins={},
        gateway=SimpleNamespace(sqlite_synchronous="normal", timezone="Asia/Shanghai"),
    )
    gw = Gateway(config=config, hook=hooks, state_dir=state)  # type: ignore[arg-type]
    gw.presence = PresenceTracker()
    opener = open_fake_ami if backend == "ami" else open_fake_esl
    async with opener(pbx) as (_server, port), contextlib.AsyncExitStack() as stores:
        for plugin in (contact_plugin, outbox_plugin):
            for store in plugin.gateway_stores(gateway=gw):
                await stores.enter_async_context(store)
        table = {
            "backend": backend,
            "host": "127.0.0.1",
            "port": port,
            "secret": "secret" if backend == "ami" else "ClueCon",
            "contact_hours": "00:00-24:00",
            "trunk": [trunk],
        }
        channel = IvrChannel(gw, parse_ivr_config(table))
        async with trio.open_nursery() as nursery:
            await nursery.start(channel.run)
            yield gw, channel
            nursery.cancel_scope.cancel()


async def enqueue(gw: Gateway, n: int, prefix: str) -> None:
    requests = [
        ContactRequest(
            contact_id=f"b{prefix}{i}",
            msisdn=f"86139{prefix}{i:06d}",
            campaign_id="bench",
            channel="ivr",
            content={"text": "offer"},
            created_at=time.time(),
        )
        for i in range(n)
    ]
    assert gw.contact_control is not None and gw.outbox is not None
    for start in range(0, n, 500):
        decisions = await gw.contact_control.decide_many(requests[start : start + 500])
        await gw.outbox.enqueue_many([d for d in decisions if d.outcome is Outcome.ALLOWED])


async def paced(backend: str, calls: int, rate: float) -> dict:
    pbx = FakePbx(default=CallScript(ring=0.05, talk=0.2))
    hooks = Hooks()
    hooks.target = calls
    trunk = {"name": "t", "concurrent": calls, "calls_per_second": rate}
    async with running(backend, trunk, pbx, hooks) as (gw, _channel):
        t0 = time.perf_counter()
        await enqueue(gw, calls, "1")
        await hooks.done.wait()
        elapsed = time.perf_counter() - t0
    times = sorted(pbx.originate_times)
    measured = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "calls": calls,
        "target_calls_per_s": rate,
        "calls_per_s": round(measured, 2),
        "pacing_error": round((measured - rate) / rate, 4),
        "calls_s": round(elapsed, 3),
        "duplicates": pbx.duplicates,
    }


async def held(backend: str, concurrent: int) -> dict:
    pbx = FakePbx(default=CallScript(ring=0.05, talk=0.2), hold_answered=True)
    hooks = Hooks()
    n = concurrent + 50
    hooks.target = n
    trunk = {"name": "t", "concurrent": concurrent, "calls_per_second": 1000}
    async with running(backend, trunk, pbx, hooks) as (gw, _channel):
        t0 = time.perf_counter()
        await enqueue(gw, n, "2")
        with trio.move_on_after(60):
            while pbx.active < concurrent:  # noqa: ASYNC110 (polling the fake switch's count)
                await trio.sleep(0.01)
        fill = time.perf_counter() - t0
        await trio.sleep(0.5)  # were any more let through?
        most = pbx.max_active
        pbx.release_all()
        pbx.hold_answered = False
        await hooks.done.wait()
    return {
        "calls": n,
        "limit": concurrent,
        "concurrent_held": most,
        "fill_s": round(fill, 3),
        "over_limit": most > concurrent,
    }


async def main_async(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {"quick": args.quick}
    for backend in ("ami", "esl"):
        out[backend] = {
            "paced": await paced(backend, args.calls, args.rate),
            "held": await held(backend, args.concurrent),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--concurrent", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.calls = args.calls or (300 if args.quick else 2000)
    args.concurrent = args.concurrent or (50 if args.quick else 200)
    configure_logging(level="warning", fmt="json")
    print(json.dumps(trio.run(main_async, args)))


if __name__ == "__main__":
    main()
