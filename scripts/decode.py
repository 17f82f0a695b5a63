#!/usr/bin/env python3
"""Decode A-interface captures into subscriber events: one JSON object per line, then counters.

Usage: decode.py PCAP [PCAP ...] [--home-plmn 46000 ...] [--shard 2/4] [--quiet]

Each event is printed as a JSON line (the SignalEvent fields that are set). The last line is
one JSON object: ``{"frames": N, "sccp_messages": N, "events": N, "errors": {"layer.reason":
N}, "skipped": {...}}``. Files are decoded in the order given, with one correlation state (as
the pcap directory source does across rotated files). Exit status 2 when a file is not a
capture. For operators checking a probe's output, and for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.sigtran.correlate import Correlator
from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.pcap import CaptureFormatError
from plugins.signaling.config import Shard
from plugins.signaling.events import counters_fragment, event_to_json, to_events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("captures", nargs="+", type=Path, metavar="PCAP")
    parser.add_argument(
        "--home-plmn",
        action="append",
        default=[],
        help="MCC+MNC of the home network (repeat); enables roaming_in events",
    )
    parser.add_argument("--shard", default="1/1", help='keep only this share of IMSIs, e.g. "2/4"')
    parser.add_argument("--quiet", action="store_true", help="print only the counters line")
    args = parser.parse_args(argv)
    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        parser.error(f"--shard: {exc}")
    decoder = Decoder(Correlator(home_plmns=tuple(args.home_plmn)))
    out = sys.stdout
    total = 0
    status = 0

    def emit(records: list[dict]) -> None:
        nonlocal total
        events = to_events(records, "pcap", shard)
        total += len(events)
        if not args.quiet:
            out.write("".join(json.dumps(event_to_json(e)) + "\n" for e in events))

    for path in args.captures:
        try:
            with path.open("rb") as f:
                reader = FileDecoder(f, decoder)
                while not reader.done:
                    emit(reader.step())
        except (CaptureFormatError, OSError) as exc:
            print(f"decode.py: {path}: {exc}", file=sys.stderr)
            decoder.count_error(
                "pcap", "bad_magic" if isinstance(exc, CaptureFormatError) else "unreadable"
            )
            status = 2
    emit(decoder.finish())
    summary = {
        "frames": decoder.frames,
        "sccp_messages": decoder.messages,
        "events": total,
        **counters_fragment(decoder.errors, decoder.skipped),
    }
    out.write(json.dumps(summary) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
