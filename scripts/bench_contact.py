#!/usr/bin/env python3
"""Benchmark of the contact-control core: decisions per second and latency, per backend.

Scenario (the issue's): 1,000,000 subscribers, 50 campaigns, 4 channels, caps in force
(channel per day, all channels per week, campaign lifetime, telemarketing cooldown, contact
hours checked), 1% of subscribers blacklisted and a 1,000,000-entry greylist imported
atomically (its import time is measured too). Requests pick a subscriber at random.

Variants, measured in the same run:

- ``sqlite``: in-memory counters + group-committed ledger, ``decide_many`` in batches of
  1,000 (a batch scheduler's path), and ``decide`` from 200 concurrent tasks (real-time path);
  ``sqlite.decide_and_queue``: the pipeline's call, decisions and the ALLOWED ones' outbox
  entries in one transaction per group commit (the state database's one writer).
- ``redis``: the Redis backend against a ``redis-server`` this script starts on loopback
  (skipped if none is installed), pipelined EVALSHA per batch.
- ``naive``: one SQLite transaction per decision (read lists and counts, insert, commit).

Latency of a decision = time until its decision is durable (for a batch: the batch's time).
``decisions_per_s`` is wall-clock. ``decisions_per_cpu_s`` divides by this process's CPU
time (all threads, the ledger writer included); ``decisions_per_loop_cpu_s`` by the CPU time
of the Trio thread alone, where every decision is made (the ledger's SQLite writes run in
the worker thread, on another core). CPU figures are robust to other processes sharing
the machine; wall-clock ones are not. The heap built by the set-up (subscribers, lists) is
frozen out of the cyclic collector once it is loaded, as gatewayd does at READY.
Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.contact.redis_backend import open_redis_contact_control  # noqa: E402
from gateway.contact.sqlite_backend import open_sqlite_contact_control  # noqa: E402
from gateway.model import ContactRequest  # noqa: E402
from gateway.outbox import OutboxConfig, open_outbox  # noqa: E402
from gateway.store import SqliteWorker, open_sqlite  # noqa: E402

CHANNELS = ("sms", "mms", "wap", "ivr")
BASE = 8613000000000


def contact_table(redis_port: int | None = None, state_writer: str = "thread") -> dict:
    table = {
        "state_writer": state_writer,
        "reservation_timeout": "10m",
        "contact_hours": {c: "00:00-24:00" for c in CHANNELS},  # checked, never quiet: any hour
        "caps": {
            "channel_day": {"scope": "channel", "window": "day", "limit": 1},
            "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
            "campaign_once": {"scope": "campaign", "window": "lifetime", "limit": 1},
        },
        "cooldowns": {"telemarketing": "30d"},
        "exemptions": {"service": ["greylist"]},
    }
    if redis_port is not None:
        table.update(backend="redis", redis=f"127.0.0.1:{redis_port}", redis_prefix="bench")
    return table


class Workload:
    def __init__(self, subscribers: int, campaigns: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.subscribers = subscribers
        self.campaigns = [
            (f"camp{i}", "telemarketing" if i % 10 == 0 else "marketing", i % 5)
            for i in range(campaigns)
        ]
        self.n = 0

    def specs(self, size: int) -> list[tuple]:
        """Requests as plain tuples (cheap to hold: the GC does not track them)."""
        rng, out = self.rng, []
        for _ in range(size):
            self.n += 1
            cid, cls, prio = self.campaigns[rng.randrange(len(self.campaigns))]
            out.append(
                (
                    f"b{self.n}",
                    str(BASE + rng.randrange(self.subscribers)),
                    cid,
                    CHANNELS[rng.randrange(4)],
                    cls,
                    prio,
                )
            )
        return out

    @staticmethod
    def requests(specs: list[tuple]) -> list[ContactRequest]:
        return [
            ContactRequest(
                contact_id=c,
                msisdn=m,
                campaign_id=k,
                channel=ch,
                campaign_class=cls,
                priority=p,
                realtime=False,
            )
            for c, m, k, ch, cls, p in specs
        ]

    def batch(self, size: int) -> list[ContactRequest]:
        return self.requests(self.specs(size))


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    if not samples:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "p50_ms": round(samples[len(samples) // 2] * 1000, 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3),
    }


async def load_lists(cc, subscribers: int, import_size: int) -> dict:
    black = [(str(BASE + i), "bench", None) for i in range(0, subscribers, 100)]
    await cc.lists.replace("blacklist", black)
    grey = [
        (str(BASE + subscribers + i), "bench", None) for i in range(import_size)
    ]  # disjoint range
    t = time.perf_counter()
    await cc.lists.replace("greylist", grey)
    return {"list_import_entries": import_size, "list_import_s": round(time.perf_counter() - t, 3)}


async def run_batches(
    cc, work: Workload, decisions: int, batch: int, streams: int, outbox=None
) -> dict:
    """``streams`` tasks each calling decide_many on batches: their commits overlap and share.

    With ``outbox``: ``decide_and_queue`` instead, the pipeline's call (each batch's decisions
    and the ALLOWED ones' outbox entries in one transaction)."""
    count = decisions // batch
    batches = [work.specs(batch) for _ in range(count)]
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    making = 0.0  # building ContactRequest objects: the caller's work, not contact control's

    async def stream() -> None:
        nonlocal making
        while batches:
            t = time.perf_counter()
            requests = work.requests(batches.pop())
            making += time.perf_counter() - t
            t = time.perf_counter()
            if outbox is None:
                result = await cc.decide_many(requests)
            else:
                result = await cc.decide_and_queue(requests, outbox)
            latencies.append(time.perf_counter() - t)
            for d in result:
                outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1

    start, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    async with trio.open_nursery() as n:
        for _ in range(streams):
            n.start_soon(stream)
    # building the requests is the caller's work: taken out of every figure
    spent = time.perf_counter() - start - making
    cpu = time.process_time() - cpu - making
    loop_cpu = time.thread_time() - loop_cpu - making
    done = count * batch
    return {
        "decisions": done,
        "batch": batch,
        "streams": streams,
        "decisions_per_s": round(done / spent),
        "decisions_per_cpu_s": round(done / cpu),
        "decisions_per_loop_cpu_s": round(done / loop_cpu),
        **percentiles(latencies),
        "outcomes": outcomes,
    }


async def run_concurrent(cc, work: Workload, decisions: int, tasks: int) -> dict:
    per_task = decisions // tasks
    queues = [work.batch(per_task) for _ in range(tasks)]
    latencies: list[float] = []

    async def worker(requests: list[ContactRequest]) -> None:
        for r in requests:
            t = time.perf_counter()
            await cc.decide(r)
            latencies.append(time.perf_counter() - t)

    t, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    async with trio.open_nursery() as n:
        for q in queues:
            n.start_soon(worker, q)
    spent, cpu = time.perf_counter() - t, time.process_time() - cpu
    loop_cpu = time.thread_time() - loop_cpu
    done = per_task * tasks
    return {
        "decisions": done,
        "tasks": tasks,
        "decisions_per_s": round(done / spent),
        "decisions_per_cpu_s": round(done / cpu),
        "decisions_per_loop_cpu_s": round(done / loop_cpu),
        **percentiles(latencies),
    }


# -- the naive baseline: one transaction per decision ------------------------------------------

NAIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (msisdn TEXT, category TEXT, PRIMARY KEY (msisdn, category)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contacts (msisdn TEXT, at REAL, channel TEXT, campaign TEXT, class TEXT);
CREATE INDEX IF NOT EXISTS contacts_msisdn ON contacts (msisdn, at);
CREATE TABLE IF NOT EXISTS ledger (at REAL, contact_id TEXT, msisdn TEXT, outcome TEXT, reason TEXT);
"""


def naive_decide(
    conn: sqlite3.Connection, r: ContactRequest, now: float, day: float, week: float
) -> str:
    if conn.execute("SELECT 1 FROM lists WHERE msisdn=? LIMIT 1", (r.msisdn,)).fetchone():
        outcome = "dnd"
    else:
        rows = conn.execute(
            "SELECT at, channel, campaign, class FROM contacts WHERE msisdn=? AND at>=?",
            (r.msisdn, now - 30 * 86400),
        ).fetchall()
        if sum(1 for a, ch, _, _ in rows if ch == r.channel and a >= day) >= 1:
            outcome = "cap.channel.day"
        elif sum(1 for a, *_ in rows if a >= week) >= 3:
            outcome = "cap.all_channels.week"
        elif any(c == r.campaign_id for _, _, c, _ in rows):
            outcome = "cap.campaign"
        elif r.campaign_class == "telemarketing" and any(k == "telemarketing" for *_, k in rows):
            outcome = "cooldown.telemarketing"
        else:
            outcome = "allowed"
            conn.execute(
                "INSERT INTO contacts VALUES (?,?,?,?,?)",
                (r.msisdn, now, r.channel, r.campaign_id, r.campaign_class),
            )
    conn.execute(
        "INSERT INTO ledger VALUES (?,?,?,?,?)", (now, r.contact_id, r.msisdn, outcome, None)
    )
    return outcome


async def run_naive(path: Path, work: Workload, decisions: int, subscribers: int, clock) -> dict:
    conn = open_sqlite(path, synchronous="full")
    conn.executescript(NAIVE_SCHEMA)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR IGNORE INTO lists VALUES (?, 'blacklist')",
        ((str(BASE + i),) for i in range(0, subscribers, 100)),
    )
    conn.execute("COMMIT")
    worker = SqliteWorker(conn)
    latencies = []
    requests = work.batch(decisions)
    start, cpu = time.perf_counter(), time.process_time()
    for r in requests:
        now = time.time()
        t = time.perf_counter()
        await worker.transaction(
            naive_decide, r, now, clock.window_start("day", now), clock.window_start("week", now)
        )
        latencies.append(time.perf_counter() - t)
    spent, cpu = time.perf_counter() - start, time.process_time() - cpu
    await worker.aclose()
    return {
        "decisions": decisions,
        "decisions_per_s": round(decisions / spent),
        "decisions_per_cpu_s": round(decisions / cpu),
        **percentiles(latencies),
    }


# -- redis-server ------------------------------------------------------------------------------


def start_redis() -> tuple[subprocess.Popen, int] | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def main(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-contact-"))
    out: dict = {
        "benchmark": "contact_control",
        "quick": args.quick,
        "subscribers": args.subscribers,
        "campaigns": args.campaigns,
        "channels": len(CHANNELS),
        "cpus": os.cpu_count(),
        "state_writer": args.state_writer,
    }
    try:
        config = parse_contact_config(contact_table(state_writer=args.state_writer))
        work = Workload(args.subscribers, args.campaigns)
        async with open_sqlite_contact_control(config, tmp / "sqlite.db") as cc:
            out.update(await load_lists(cc, args.subscribers, args.import_size))
            gc.freeze()  # as gatewayd does once started (gateway/daemon.py): the set-up heap
            sqlite = await run_batches(cc, work, args.decisions, args.batch, args.streams)
            sqlite["decide_concurrent"] = await run_concurrent(
                cc, work, args.concurrent_decisions, 200
            )
            sqlite["ledger_commits"] = cc.ledger.commits
            clock = cc.engine.clock
            async with open_outbox(
                tmp / "sqlite.db",
                OutboxConfig(),
                writer=cc.ledger.writer,
                ledger=cc.ledger,
                run_scheduler=False,
            ) as ob:
                commits = cc.ledger.commits
                queued = await run_batches(
                    cc,
                    Workload(args.subscribers, args.campaigns, seed=10),
                    args.decisions,
                    args.batch,
                    args.streams,
                    outbox=ob,
                )
                queued["commits"] = cc.ledger.commits - commits
                queued["queued"] = ob.stats["enqueued"]
            sqlite["decide_and_queue"] = queued
        out["sqlite"] = sqlite
        out["sqlite_rss_mb"] = rss_mb()
        out["naive"] = await run_naive(
            tmp / "naive.db",
            Workload(args.subscribers, args.campaigns, seed=8),
            args.naive_decisions,
            args.subscribers,
            clock,
        )
        out["sqlite"]["speedup_vs_naive"] = round(
            sqlite["decisions_per_s"] / out["naive"]["decisions_per_s"], 1
        )
        out["sqlite"]["cpu_speedup_vs_naive"] = round(
            sqlite["decisions_per_cpu_s"] / out["naive"]["decisions_per_cpu_s"], 1
        )
        out["sqlite"]["decide_and_queue"]["speedup_vs_naive"] = round(
            sqlite["decide_and_queue"]["decisions_per_s"] / out["naive"]["decisions_per_s"], 1
        )
        out["target_decisions_per_s"] = 100_000
        out["target_speedup_vs_naive"] = 20
        out["target_met"] = (
            sqlite["decisions_per_s"] >= 100_000 and out["sqlite"]["speedup_vs_naive"] >= 20
        )
        server = start_redis()
        if server is None:
            out["redis"] = {"skipped": "redis-server not installed"}
        else:
            proc, port = server
            try:
                rconfig = parse_contact_config(contact_table(port))
                async with open_redis_contact_control(rconfig, tmp / "redis-ledger.db") as rc:
                    await rc.lists.replace(
                        "blacklist",
                        [(str(BASE + i), "bench", None) for i in range(0, args.subscribers, 100)],
                    )
                    redis = await run_batches(
                        rc,
                        Workload(args.subscribers, args.campaigns, seed=9),
                        args.redis_decisions,
                        args.batch,
                        args.streams,
                    )
                    redis["round_trips"] = rc.round_trips
                out["redis"] = redis
                out["redis"]["speedup_vs_naive"] = round(
                    redis["decisions_per_s"] / out["naive"]["decisions_per_s"], 1
                )
            finally:
                proc.terminate()
                proc.wait()
        out["rss_mb"] = rss_mb()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--decisions", type=int, default=500_000)
    p.add_argument("--redis-decisions", type=int, default=200_000)
    p.add_argument("--naive-decisions", type=int, default=10_000)
    p.add_argument("--concurrent-decisions", type=int, default=100_000)
    p.add_argument("--import-size", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--streams", type=int, default=4, help="concurrent decide_many callers")
    p.add_argument(
        "--state-writer",
        choices=("thread", "process"),
        default="thread",
        help="[contact] state_writer of the SQLite run (default thread, the default)",
    )
    args = p.parse_args()
    if args.quick:
        args.subscribers, args.decisions, args.redis_decisions = 50_000, 20_000, 10_000
        args.naive_decisions, args.concurrent_decisions, args.import_size = 1_000, 10_000, 50_000
    return args


if __name__ == "__main__":
    result = trio.run(main, parse_args())
    print(json.dumps(result))
