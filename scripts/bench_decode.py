#!/usr/bin/env python3
"""Benchmark: decoding A-interface captures, ours against tshark on the same file and fields.

Usage: bench_decode.py [--packets N] [--quick] [--keep PATH] [--no-tshark] [--capture FILE]

Generates a capture of N packets (default 1,000,000; --quick: 100,000) of subscriber
procedures (Ethernet/IPv4/SCTP/M3UA/SCCP/BSSAP, one message per packet) with our encoder, or
takes ``--capture FILE`` (e.g. one from the independent encoder:
``scripts/independent_capture.py FILE --subscribers 200 --procedures 1500 --packets 1000000``),
then measures on one core:

- ``decoder``: packets/s and events/s of adapters.sigtran (frames to event dicts);
- ``with_signal_events``: the same plus SignalEvent construction, as the pcap source does;
- ``tshark``: ``tshark -n -T fields`` with the fields our tshark comparison test checks,
  output to /dev/null, wall time including its start-up (measured in the same run).

Rates are given per wall-clock second and per CPU second (``packets_per_cpu_s``: steadier
when other work shares the machine). The last line of stdout is one JSON object;
``speedup_vs_tshark`` is our decoder's packets/s over tshark's (``_cpu``: on CPU time).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.sigtran.correlate import Correlator  # noqa: E402
from adapters.sigtran.decoder import Decoder, FileDecoder  # noqa: E402
from adapters.sigtran.pcap import pcap_record, write_pcap_header  # noqa: E402
from adapters.sigtran.scenario import Scenario, frames  # noqa: E402

TSHARK_FIELDS = [
    "frame.number",
    "sccp.message_type",
    "sccp.slr",
    "sccp.dlr",
    "gsm_a.bssmap.msgtype",
    "gsm_a.dtap.msg_mm_type",
    "gsm_a.dtap.msg_cc_type",
    "gsm_a.dtap.msg_sms_type",
    "gsm_a.dtap.msg_rr_type",
    "e212.imsi",
    "3gpp.tmsi",
    "gsm_a.tmsi",
    "gsm_a.imeisv",
    "gsm_a.lac",
    "gsm_a.bssmap.cell_lac",
    "gsm_a.bssmap.cell_ci",
    "gsm_a.dtap.cause",
    "gsm_a.dtap.cld_party_bcd_num",
    "gsm_a.dtap.clg_party_bcd_num",
    "gsm_a.rp.msg_type",
    "gsm_sms.tp-da",
    "gsm_a.bssmap.cause",
    "gsm_a.dtap.updating_type",
]


def generate(path: Path, packets: int) -> int:
    """Repeat a block of ~20k packets (shifted in time) until ``packets``; returns the count."""
    scenario = Scenario(seed=1, subscribers=5000).run(1500)
    block = list(frames(scenario.messages, "m3ua"))
    span = block[-1][0] - block[0][0] + 1.0
    written, shift = 0, 0.0
    with path.open("wb") as f:
        f.write(write_pcap_header(1))
        while written < packets:
            part = block[: packets - written]
            f.write(b"".join(pcap_record(ts + shift, frame) for ts, frame in part))
            written += len(part)
            shift += span
    return written


def run_ours(path: Path, *, signal_events: bool) -> dict:
    to_events = None
    if signal_events:
        from plugins.signaling.config import Shard
        from plugins.signaling.events import to_events as convert

        shard = Shard()

        def to_events(records):
            return convert(records, "bench", shard)

    decoder = Decoder(Correlator(home_plmns=("46000",)))
    events = 0
    cpu = time.process_time()
    start = time.perf_counter()
    with path.open("rb") as f:
        reader = FileDecoder(f, decoder)
        while not reader.done:
            batch = reader.step(50_000)
            events += len(to_events(batch) if to_events else batch)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "packets": decoder.frames,
        "packets_per_s": round(decoder.frames / elapsed),
        "packets_per_cpu_s": round(decoder.frames / cpu),
        "events_per_s": round(events / elapsed),
        "seconds": round(elapsed, 3),
        "events": events,
        "decode_errors": sum(decoder.errors.values()),
    }


def run_tshark(path: Path, packets: int) -> dict | None:
    if shutil.which("tshark") is None:
        return None
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "packets_per_s": round(packets / elapsed),
        "packets_per_cpu_s": round(packets / cpu),
        "seconds": round(elapsed, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="100,000 packets")
    parser.add_argument("--keep", type=Path, help="write the capture here and keep it")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--capture", type=Path, help="measure on this capture instead")
    args = parser.parse_args(argv)
    packets = args.packets or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        if args.capture:
            path = args.capture
            size_mb = path.stat().st_size / 1e6
        else:
            path = args.keep or Path(tmp) / "bench.pcap"
            t0 = time.perf_counter()
            packets = generate(path, packets)
            size_mb = path.stat().st_size / 1e6
            print(
                f"generated {packets} packets, {size_mb:.1f} MB in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        decoder = run_ours(path, signal_events=False)
        if args.capture:
            packets = decoder["packets"]
        with_events = run_ours(path, signal_events=True)
        tshark = None if args.no_tshark else run_tshark(path, packets)
    result = {
        "mode": "capture" if args.capture else "quick" if args.quick else "full",
        "capture": str(args.capture) if args.capture else "generated (our encoder)",
        "packets": packets,
        "capture_mb": round(size_mb, 1),
        "decoder": decoder,
        "with_signal_events": with_events,
        "tshark": tshark,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if tshark:
        result["speedup_vs_tshark"] = round(decoder["packets_per_s"] / tshark["packets_per_s"], 2)
        # the same on CPU time: steadier on a shared, busy machine
        result["speedup_vs_tshark_cpu"] = round(
            decoder["packets_per_cpu_s"] / tshark["packets_per_cpu_s"], 2
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
