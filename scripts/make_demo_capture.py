#!/usr/bin/env python3
"""Write the demo capture etc/demo/sample.pcap with our own encoder (adapters.sigtran.build).

Usage: make_demo_capture.py [OUT] [--procedures N] [--seed S]

The subscribers are the demo profiles' IMSIs (etc/demo/profiles.csv) plus two roamers; the
cells are the demo areas (airport, railway station, city centre: etc/areas.toml); the traffic
(power on/off, location updates, calls to 12580/10086, SMS, handovers, handset changes) runs
over about three hours of 2026-11-22 from 09:00 Beijing time, as Ethernet/IPv4/SCTP/M3UA with
bundled chunks, so the demo daemon's campaigns have something to trigger on. Deterministic.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.sigtran.scenario import Scenario, frames, write_pcap  # noqa: E402

START = 1_795_309_200.0  # 2026-11-22 09:00 +08:00
CELLS = [
    (4101, 1001),
    (4101, 1002),
    (4101, 1003),
    (4101, 1004),
    (4102, 2001),
    (4102, 2002),
    (4103, 3001),
    (4110, 11),
    (4110, 12),
    (4111, 12),
    (4111, 21),
]
ROAMERS = ["208011234567890", "454001234567891"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "etc/demo/sample.pcap")
    parser.add_argument("--procedures", type=int, default=120)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    profiles = ROOT / "etc/demo/profiles.csv"
    with profiles.open() as f:
        imsis = [row["imsi"] for row in csv.DictReader(f) if row.get("imsi")]
    scenario = Scenario(args.seed, imsis=imsis + ROAMERS, cells=CELLS, start=START, gap=120.0)
    scenario.run(args.procedures)
    with args.out.open("wb") as f:
        n = write_pcap(f, 1, frames(scenario.messages, "m3ua", bundle=True))
    size = args.out.stat().st_size
    print(f"{args.out}: {n} packets, {len(scenario.messages)} SCCP messages, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
