#!/usr/bin/env python3
"""Benchmark of batch campaigns: a target list from file load to the outbox, targets per second.

Scenario (the issue's): a 1,000,000-line target file (national and E.164 forms, a few
duplicates and comments) is read, normalised, de-duplicated and snapshotted (``load``), then
executed unpaced by :class:`gateway.batch.runner.BatchRunner` through the real SQLite contact
control (caps in force: channel per day, all channels per week, campaign lifetime; contact
hours checked) and its outbox, sharing the state database's one writer (``execute``), with
the durable cursor written after every step. ``end_to_end`` is the runner's whole run: its
own load of the file plus the execution (``load`` is the same load timed alone).

``targets_per_s`` is wall-clock; ``targets_per_cpu_s`` divides by this process's CPU time
(all threads), ``targets_per_loop_cpu_s`` by the Trio thread's alone (the SQLite writes run in
the writer's thread, on another core): CPU figures are robust to other processes sharing the
machine, wall-clock ones are not. The set-up heap is frozen out of the cyclic collector
before the run, as gatewayd does at READY. Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.batch.progress import ProgressStore  # noqa: E402
from gateway.batch.runner import BatchRunner  # noqa: E402
from gateway.campaigns.loader import parse_campaign  # noqa: E402
from gateway.campaigns.targets import read_targets  # noqa: E402
from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.contact.sqlite_backend import open_sqlite_contact_control  # noqa: E402
from gateway.model import CampaignState  # noqa: E402
from gateway.outbox import OutboxConfig, open_outbox  # noqa: E402

CONTACT = {
    "reservation_timeout": "10m",
    "contact_hours": {"sms": "00:00-24:00"},  # checked, never quiet
    "caps": {
        "channel_day": {"scope": "channel", "window": "day", "limit": 1},
        "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
        "campaign_once": {"scope": "campaign", "window": "lifetime", "limit": 1},
    },
}


def write_target_file(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# bench targets\n")
        for i in range(n):
            handle.write(f"139{i:08d}\n" if i % 2 else f"+86139{i:08d}\n")
        for i in range(0, n, 1000):  # duplicates
            handle.write(f"139{i:08d}\n")


class OneCampaign:
    """The campaigns store as the runner sees it (get, transition), for one campaign."""

    def __init__(self, cdef: Any) -> None:
        self.cdef = cdef

    def get(self, campaign_id: str) -> Any:
        return self.cdef if campaign_id == self.cdef.id else None

    async def transition(self, campaign_id: str, action: str, **_: Any) -> Any:
        return self.cdef


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        targets = tmp / "targets.txt"
        write_target_file(targets, args.targets)
        cdef = parse_campaign(
            {
                "id": "bench",
                "name": "bench",
                "kind": "batch",
                "channels": ["sms"],
                "initial_state": "running",
                "content": {"sms": {"text": "Bill day: 10GB for 10 yuan"}},
                "target": {"list": "/dev/null"},  # the loader's check; the runner's file below
            },
            origin="bench",
            areas={},
        )
        cdef = attrs.evolve(cdef, target_list=str(targets))
        assert cdef.campaign.state is CampaignState.RUNNING
        config = parse_contact_config(CONTACT)
        db = tmp / "gateway.sqlite"
        async with open_sqlite_contact_control(config, db) as cc:
            async with open_outbox(
                db, OutboxConfig(), writer=cc.ledger.writer, ledger=cc.ledger, run_scheduler=False
            ) as ob:
                progress = ProgressStore(cc.ledger.writer)
                await progress.create_schema()
                runner = BatchRunner(
                    campaign_id="bench",
                    campaigns=OneCampaign(cdef),
                    control=cc,
                    outbox=ob,
                    progress=progress,
                    snapshot_dir=tmp / "batch",
                    max_chunk=args.chunk,
                )
                # the load alone (its own figure), then the run from the file: the runner
                # reads, normalises and snapshots the file itself, so the end-to-end time
                # counts one load (an earlier version counted two)
                t0 = time.perf_counter()
                load_keys = await trio.to_thread.run_sync(read_targets, targets)
                t_load = time.perf_counter() - t0
                gc.freeze()  # as gatewayd does once started (gateway/daemon.py)
                t0, c0, l0 = time.perf_counter(), cpu(), time.thread_time()
                await runner.run()
                elapsed, used = time.perf_counter() - t0, cpu() - c0
                loop_used = time.thread_time() - l0
                queued = ob.stats["enqueued"]
        conn = sqlite3.connect(db)
        rows = conn.execute("SELECT COUNT(*) FROM outbox_entries").fetchone()[0]
        conn.close()
        n = runner.total
        assert n == len(load_keys) == rows == queued, (n, len(load_keys), rows, queued)
        return {
            "benchmark": "batch",
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "targets": n,
            "file_lines": args.targets + args.targets // 1000,
            "load": {"seconds": round(t_load, 3), "targets_per_s": round(n / t_load)},
            "end_to_end": {
                "seconds": round(elapsed, 3),
                "targets_per_s": round(n / elapsed),
                "targets_per_cpu_s": round(n / used),
                # the Trio thread alone (requests, decisions, staging): the SQLite writes run
                # in the writer's thread, on the other core
                "targets_per_loop_cpu_s": round(n / loop_used),
            },
            "outbox_entries": rows,
            "chunk": args.chunk,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--targets", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=5000, help="targets per decide_and_queue step")
    p.add_argument("--quick", action="store_true", help="100,000 targets")
    args = p.parse_args()
    if args.quick:
        args.targets = 100_000
    return args


if __name__ == "__main__":
    print(json.dumps(trio.run(main, parse_args())))
