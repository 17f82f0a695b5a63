"""Benchmark of real-time trigger matching and of the subscriber profile index.

1. End to end: events through enrich (profile lookup and learning) + rule matching + the real
   SQLite contact control (``decide_many``), with 1,000,000 subscribers and 1,000 running
   campaigns, against a naive matcher (every rule tested for every event) in the same run.
   Enrichment: the same campaigns and events again with a number-segment table of ~280,000
   segments and a TAC table of 50,000 handsets loaded (``end_to_end_tables``: what having
   the tables costs the matcher), and with one more campaign per scene of the operator that
   reads them (``end_to_end_scenes``: visitor, long distance, three rejected calls, MMS
   handset by TAC; a tenth of the subscribers are visitors and most calls long distance, so
   these match far more often than the others: compare ``match_us_per_event``).
2. Profiles: load time and RSS of 10,000,000 subscribers, measured in a fresh subprocess over a
   file generated beforehand in a temporary directory.

Prints one JSON object on the last line. ``--quick`` shrinks every size (named in the output).
Targets (issue 6): >= 50,000 events/s end to end on one core, >= 20x the naive matcher,
10M profiles in <= 2 GB RSS and <= 90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from gen_profiles import generate  # noqa: E402

from gateway.app import Gateway  # noqa: E402
from gateway.campaigns.loader import parse_campaign  # noqa: E402
from gateway.contact.config import parse_contact_config  # noqa: E402
from gateway.contact.sqlite_backend import open_sqlite_contact_control  # noqa: E402
from gateway.enrich import Enrichment, load_segments, load_tac  # noqa: E402
from gateway.model import EventKind, SignalEvent  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402
from gateway.profiles import ProfileHolder  # noqa: E402
from gateway.rules import RuleIndex, naive_candidates  # noqa: E402
from gateway.rules.areas import Area  # noqa: E402

LACS = [4100 + i for i in range(50)]
CELLS_PER_LAC = 200
SERVICE_NUMBERS = ["12580", "10086", "12593", "1259390", "10010"] + [
    f"955{i:02d}" for i in range(45)
]
K = EventKind
OUTCOMES = ("answered", "answered", "answered", "rejected", "no_answer", "busy")
REGIONS = [(f"province{p}", f"city{p}_{c}") for p in range(31) for c in range(4)]


def write_tables(tmp: Path, rng: random.Random) -> tuple[Path, Path]:
    """A segments file of ~280,000 segments (a tenth of the subscribers' segments belong to
    other provinces: visitors) and a TAC file of 50,000 handsets (the events' TAC among them)."""
    segments, tac = tmp / "segments.csv", tmp / "tac.csv"
    with segments.open("w", encoding="utf-8") as out:
        out.write("prefix,province,city\n")
        for prefix in range(1_300_000, 2_000_000):
            if 1_380_000 <= prefix < 1_381_000:  # the generated subscribers' segments
                province, city = (
                    REGIONS[rng.randrange(len(REGIONS))] if rng.random() < 0.1 else REGIONS[0]
                )
            elif rng.random() < 0.4:
                province, city = REGIONS[rng.randrange(len(REGIONS))]
            else:
                continue
            out.write(f"{prefix},{province},{city}\n")
    with tac.open("w", encoding="utf-8") as out:
        out.write("tac,brand,model,capabilities\n35693803,nokia,n95,mms|wap|3g\n")
        for i, code in enumerate(rng.sample(range(10_000_000, 99_999_999), 50_000)):
            if code != 35693803:
                caps = ("mms|wap|lte", "wap", "", "mms|wap")[i % 4]
                out.write(f"{code},brand{i % 40},model{i},{caps}\n")
    return segments, tac


def make_campaigns(count: int, rng: random.Random) -> tuple[list, dict]:
    """A realistic mix: located dwell/profile offers, service-call follow-ups, power-on care,
    handset offers, roaming welcomes."""
    areas = {}
    for i in range(count // 10):
        lac = rng.choice(LACS)
        cells = [f"{lac}-{rng.randrange(1, CELLS_PER_LAC + 1)}" for _ in range(12)]
        areas[f"area{i}"] = Area(
            name=f"area{i}",
            cells=frozenset(int(c.split("-")[0]) << 16 | int(c.split("-")[1]) for c in cells),
        )
    defs = []
    for n in range(count):
        kind = rng.random()
        conditions: list[dict] = []
        if kind < 0.85:
            trigger = {"events": ["location_update", "periodic_update", "cell_change"]}
            if rng.random() < 0.8:
                trigger["areas"] = [f"area{rng.randrange(len(areas))}"]
            else:
                trigger["cells"] = [
                    f"{rng.choice(LACS)}-{rng.randrange(1, CELLS_PER_LAC + 1)}" for _ in range(5)
                ]
            if rng.random() < 0.5:
                conditions.append({"type": "dwell", "at_least": "20m"})
            else:
                conditions.append(
                    {"type": "tag", "name": rng.choice(["traveller", "vip", "student"])}
                )
                conditions.append(
                    {
                        "type": "profile",
                        "attribute": "arpu_band",
                        "in": rng.sample(["a0", "a1", "a2", "a3", "a4", "a5"], 2),
                    }
                )
            conditions.append(
                {"type": "lacks_product", "product": rng.choice(["12593", "mms10", "music"])}
            )
        elif kind < 0.95:
            trigger = {"events": ["call_end"]}
            conditions.append({"type": "peer", "numbers": rng.sample(SERVICE_NUMBERS, 1)})
            conditions.append({"type": "time_of_day", "between": "07:00-23:00"})
        elif kind < 0.96:
            trigger = {"events": ["power_on"]}
            conditions.append({"type": "sequence", "after": "power_off", "gap_at_least": "1h"})
        elif kind < 0.963:
            trigger = {"events": ["handset_change"]}
            conditions.append({"type": "capability", "name": "mms"})
        else:
            trigger = {"events": ["roaming_in"], "lacs": [rng.choice(LACS)]}
            conditions.append({"type": "profile", "attribute": "region", "not_in": ["beijing"]})
        trigger["conditions"] = conditions
        defs.append(_campaign(n, trigger, rng, areas))
    return defs, areas


def make_scene_campaigns(first: int, areas: dict) -> list:
    """One campaign per scene of the operator (numbered from ``first``), after the others."""
    rng = random.Random(11)
    return [_campaign(first + i, trigger, rng, areas) for i, trigger in enumerate(SCENES)]


#: Triggers of the operator's scenes (etc/campaigns/): they read the enrichment tables.
SCENES = [
    {"events": ["power_on", "location_update"], "conditions": [{"type": "visitor"}]},
    {
        "events": ["call_end"],
        "conditions": [
            {"type": "long_distance"},
            {"type": "outcome", "values": ["answered"]},
            {"type": "lacks_product", "product": "12593"},
        ],
    },
    {
        "events": ["call_end"],
        "conditions": [
            {"type": "direction", "values": ["mt"]},
            {"type": "outcome", "values": ["rejected"]},
            {"type": "count", "at_least": 3, "within": "1h"},
        ],
    },
    {"events": ["handset_change"], "conditions": [{"type": "capability", "name": "mms"}]},
]


def _campaign(n: int, trigger: dict, rng: random.Random, areas: dict) -> object:
    table = {
        "id": f"c{n:04d}",
        "name": f"campaign {n}",
        "priority": rng.randrange(100),
        "channels": ["sms"],
        "initial_state": "running",
        "control_group_percent": 5.0,
        "policy": {"once_per": "1d"},
        "content": {"sms": {"text": "Dear {brand|customer}, offer " + str(n)}},
        "trigger": trigger,
    }
    return parse_campaign(table, origin="bench", areas=areas)


def make_events(
    count: int, subscribers: int, rng: random.Random, start: float
) -> list[SignalEvent]:
    """A signaling mix over ~8 simulated hours: 75% mobility, 15% calls (5% of them to service
    numbers), 6% power on/off, 0.5% handset changes, 3.5% roaming in."""
    events = []
    step = 8 * 3600 / count
    base_imsi = 460000000000000
    for i in range(count):
        ts = start + i * step
        imsi = str(base_imsi + rng.randrange(subscribers))
        r = rng.random()
        lac = rng.choice(LACS)
        ci = rng.randrange(1, CELLS_PER_LAC + 1)
        if r < 0.75:
            kind = (K.LOCATION_UPDATE, K.PERIODIC_UPDATE, K.CELL_CHANGE)[i % 3]
            events.append(SignalEvent(kind=kind, timestamp=ts, imsi=imsi, lac=lac, ci=ci))
        elif r < 0.90:
            peer = (
                rng.choice(SERVICE_NUMBERS)
                if rng.random() < 0.05
                else f"1390000{rng.randrange(10000):04d}"
            )
            events.append(
                SignalEvent(
                    kind=K.CALL_END,
                    timestamp=ts,
                    imsi=imsi,
                    lac=lac,
                    ci=ci,
                    peer=peer,
                    cause=16,
                    direction=("mo", "mt")[i % 2],
                    outcome=OUTCOMES[i % len(OUTCOMES)],
                )
            )
        elif r < 0.96:
            kind = K.POWER_OFF if rng.random() < 0.5 else K.POWER_ON
            events.append(SignalEvent(kind=kind, timestamp=ts, imsi=imsi, lac=lac, ci=ci))
        elif r < 0.965:
            events.append(
                SignalEvent(
                    kind=K.HANDSET_CHANGE,
                    timestamp=ts,
                    imsi=imsi,
                    imei=f"35693803{rng.randrange(10**7):07d}",
                )
            )
        else:
            events.append(SignalEvent(kind=K.ROAMING_IN, timestamp=ts, imsi=imsi, lac=lac, ci=ci))
    return events


class Campaigns:
    """The two things the pipeline reads from the campaigns store."""

    def __init__(self, index) -> None:
        self.rule_index = index
        self.counts: Counter = Counter()

    def count(self, campaign_id: str, name: str, amount: int = 1) -> None:
        self.counts[name] += amount


class NaiveIndex(RuleIndex):
    """Every rule tested for every event: the baseline."""

    def candidates(self, event):
        return naive_candidates(self.rules, event)


class NullOutbox:
    def __init__(self) -> None:
        self.enqueued = 0

    async def enqueue_many(self, decisions) -> int:
        self.enqueued += len(decisions)
        return len(decisions)

    async def defer(self, request, not_before) -> None:
        pass


CONTACT = {
    "synchronous": "normal",
    "caps": {
        "sms_daily": {"scope": "channel", "channel": "sms", "window": "day", "limit": 2},
        "all_week": {"scope": "all_channels", "window": "week", "limit": 5},
    },
}


async def run_pipeline(
    holder, index, events, state_dir: Path, batch: int = 1000, enrichment=None
) -> dict:
    """Feed ``events`` in batches through a Pipeline with the real SQLite contact control."""
    gw = Gateway(config=None, hook=None, state_dir=state_dir)
    gw.outbox = NullOutbox()
    campaigns = Campaigns(index)
    pipeline = Pipeline(
        gw, profiles=holder, campaigns=campaigns, timezone="Asia/Shanghai", enrichment=enrichment
    )
    outcomes: Counter = Counter()
    async with open_sqlite_contact_control(
        parse_contact_config(CONTACT), state_dir / "gateway.sqlite"
    ) as control:
        gw.contact_control = control
        match_s = decide_s = 0.0
        requests = 0
        started = time.perf_counter()
        for i in range(0, len(events), batch):
            chunk = events[i : i + batch]
            t0 = time.perf_counter()
            found = pipeline.match_batch(chunk)
            t1 = time.perf_counter()
            if found:
                requests += len(found)
                for d in await pipeline.submit(found):
                    outcomes[d.outcome.value] += 1
            match_s += t1 - t0
            decide_s += time.perf_counter() - t1
        elapsed = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": round(elapsed, 3),
        "events_per_s": round(len(events) / elapsed),
        "match_us_per_event": round(match_s / len(events) * 1e6, 2),
        "decide_s": round(decide_s, 3),
        "contact_requests": requests,
        "decisions": dict(outcomes),
        "matching_state_entries": {k: v["entries"] for k, v in pipeline.state.statistics().items()},
    }


def matcher_only(holder, variants: dict, events, rounds: int = 5, batch: int = 1000) -> dict:
    """Matching alone (enrich + match, no decisions) in CPU time, the variants interleaved
    ``rounds`` times with fresh matching state, best round of each: robust on a shared machine. (The
    profile index keeps what it learned, so rounds after the first skip most of ``observe``:
    the same for every variant.)"""
    best: dict[str, float] = {}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # each goes first once
            index, enrichment = variants[name]
            gw = Gateway(config=None, hook=None, state_dir=Path("/nonexistent"))
            pipeline = Pipeline(
                gw,
                profiles=holder,
                campaigns=Campaigns(index),
                timezone="Asia/Shanghai",
                enrichment=enrichment,
            )
            t0 = time.process_time()  # CPU time: other processes on the machine do not count
            for i in range(0, len(events), batch):
                pipeline.match_batch(events[i : i + batch])
            elapsed = time.process_time() - t0
            best[name] = min(best.get(name, elapsed), elapsed)
    out: dict = {
        f"{name}_us_per_event": round(s / len(events) * 1e6, 2) for name, s in best.items()
    }
    out["tables_vs_plain"] = round(best["tables"] / best["plain"], 3)
    out["rounds"] = rounds
    return out


def big_profiles(n: int, tmp: Path) -> dict:
    """Generate a file of ``n`` subscribers, then load it in a fresh interpreter."""
    path = tmp / f"profiles_{n}.csv"
    t0 = time.perf_counter()
    generate(str(path), n, seed=7)
    generate_s = time.perf_counter() - t0
    probe = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from gateway.profiles import load_profiles\n"
        "t = time.perf_counter(); c = time.process_time()\n"
        f"index = load_profiles({str(path)!r})\n"
        "load_s = time.perf_counter() - t; cpu_s = time.process_time() - c\n"
        "rss = int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()\n"
        "t = time.perf_counter(); hits = sum(index.row_by_imsi(str(460000000000000 + i * 7919 % len(index))) >= 0 for i in range(100000)); lookup_s = time.perf_counter() - t\n"
        "print(json.dumps({'subscribers': len(index), 'load_s': round(load_s, 2), 'load_cpu_s': round(cpu_s, 2), 'rss_mb': round(rss / 2**20),"
        " 'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),"
        " 'lookup_us': round(lookup_s / 100000 * 1e6, 2), 'lookup_hits': hits}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["file_mb"] = round(path.stat().st_size / 2**20)
    result["generate_s"] = round(generate_s, 1)
    path.unlink()
    return result


async def main_async(args) -> dict:
    rng = random.Random(42)
    tmp = Path(tempfile.mkdtemp(prefix="bench_match_"))
    try:
        profile_file = tmp / "profiles.csv"
        generate(str(profile_file), args.subscribers, seed=3)
        holder = ProfileHolder()
        t0 = time.perf_counter()
        assert await holder.load(profile_file), holder.last_error
        profiles_load_s = time.perf_counter() - t0
        defs, areas = make_campaigns(args.campaigns, rng)
        compiled = RuleIndex((d.trigger, d) for d in defs)
        naive = NaiveIndex((d.trigger, d) for d in defs)
        start = 1_772_000_000.0 - 1_772_000_000.0 % 86400  # 08:00 local
        events = make_events(args.events, args.subscribers, rng, start)
        (tmp / "fast").mkdir()
        (tmp / "naive").mkdir()
        # warm-up (allocator, caches, the first SQLite database): not measured
        (tmp / "warmup").mkdir()
        await run_pipeline(holder, compiled, events[: len(events) // 5], tmp / "warmup")
        assert await holder.load(profile_file)
        fast = await run_pipeline(holder, compiled, events, tmp / "fast")
        segments_file, tac_file = write_tables(tmp, random.Random(5))
        t0 = time.perf_counter()
        enrichment = Enrichment(
            segments=load_segments(segments_file),
            tac=load_tac(tac_file),
            local_province=REGIONS[0][0],
            local_city=REGIONS[0][1],
        )
        tables_load_s = time.perf_counter() - t0
        runs = {}
        scenes = RuleIndex((d.trigger, d) for d in defs + make_scene_campaigns(len(defs), areas))
        for name, index in (("tables", compiled), ("scenes", scenes)):
            # fresh learned attributes for each further run: reload the same file
            assert await holder.load(profile_file)
            (tmp / name).mkdir()
            runs[name] = await run_pipeline(
                holder, index, events, tmp / name, enrichment=enrichment
            )
        runs["tables"]["tables"] = {
            "segments": len(enrichment.segments),
            "tacs": len(enrichment.tac),
            "load_s": round(tables_load_s, 2),
        }
        runs["scenes"]["campaigns"] = len(scenes)
        only = matcher_only(
            holder,
            {
                "plain": (compiled, None),
                "tables": (compiled, enrichment),
                "scenes": (scenes, enrichment),
            },
            events,
        )
        assert await holder.load(profile_file)
        naive_events = events[: args.naive_events]
        slow = await run_pipeline(holder, naive, naive_events, tmp / "naive")
        result = {
            "quick": args.quick,
            "subscribers": args.subscribers,
            "campaigns": args.campaigns,
            "profiles_load_s": round(profiles_load_s, 2),
            "end_to_end": fast,
            "end_to_end_tables": runs["tables"],
            "end_to_end_scenes": runs["scenes"],
            "matcher_only": only,
            "tables_vs_plain_events_per_s": round(
                runs["tables"]["events_per_s"] / fast["events_per_s"], 3
            ),
            "tables_vs_plain_match_us": round(
                runs["tables"]["match_us_per_event"] / fast["match_us_per_event"], 3
            ),
            "naive": slow,
            "speedup_vs_naive": round(fast["events_per_s"] / slow["events_per_s"], 1),
        }
        if args.big_profiles:
            result["profiles_big"] = big_profiles(args.big_profiles, tmp)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--campaigns", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--naive-events", type=int)
    parser.add_argument(
        "--big-profiles", type=int, help="subscribers for the load/RSS test (0: skip)"
    )
    args = parser.parse_args()
    defaults = (
        {
            "subscribers": 100_000,
            "campaigns": 200,
            "events": 20_000,
            "naive_events": 2_000,
            "big_profiles": 1_000_000,
        }
        if args.quick
        else {
            "subscribers": 1_000_000,
            "campaigns": 1_000,
            "events": 300_000,
            "naive_events": 10_000,
            "big_profiles": 10_000_000,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    result = trio.run(main_async, args)
    big = result.get("profiles_big")
    result["targets"] = {
        "events_per_s_min": 50_000,
        "events_per_s_met": result["end_to_end"]["events_per_s"] >= 50_000,
        "speedup_vs_naive_min": 20,
        "speedup_met": result["speedup_vs_naive"] >= 20,
        "profiles_10m_rss_mb_max": 2048,
        "profiles_10m_load_s_max": 90,
        "profiles_met": None
        if not big or big["subscribers"] < 10_000_000
        else big["rss_mb"] <= 2048 and big["peak_rss_mb"] <= 2048 and big["load_s"] <= 90,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
