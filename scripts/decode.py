#!/usr/bin/env python3
"""Decode A-interface captures into subscriber events: one JSON object per line, then counters.

Usage: decode.py PCAP [PCAP ...] [--home-plmn 46000 ...] [--shard 2/4] [--quiet]
                 [--enrich [--config gateway.toml | --segments CSV --tac CSV --local PROVINCE/CITY]]

Each event is printed as a JSON line (the SignalEvent fields that are set). With ``--enrich``
each event also gets ``"enriched"``: the subscriber's and the peer's home region (number
segments, area codes), visitor and long distance (against the local region), and the
handset's brand, model and capabilities (TAC of the IMEI seen last). The tables come from
the ``[enrichment]`` section of ``--config`` (and its ``[numbers]``), else from ``--segments``,
``--tac`` and ``--local`` (default: the samples under etc/enrich/, local beijing). The last line is
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
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.sigtran.correlate import Correlator
from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.pcap import CaptureFormatError
from gateway.enrich import Enrichment, TableFileError, load_segments, load_tac
from gateway.errors import ConfigError
from gateway.numbers import NumberPlan, parse_numbers_config, use_plan
from gateway.profiles.loader import ProfileFileError, load_profiles
from plugins.signaling.config import Shard
from plugins.signaling.events import (
    EventDescriber,
    counters_fragment,
    event_to_json,
    to_events,
)

ETC = Path(__file__).resolve().parents[1] / "etc"


def open_enrichment(args: argparse.Namespace) -> tuple[Enrichment, NumberPlan, Path | None]:
    """The tables, numbering plan and profile file of ``--config``, else of the options."""
    profiles = args.profiles
    if args.config is not None:
        from gateway.config import read_toml
        from gateway.enrich.plugin import parse_enrichment_config

        table = read_toml(args.config)
        conf = parse_enrichment_config(table.get("enrichment", {}))
        plan = parse_numbers_config(table.get("numbers", {}))
        base = args.config.resolve().parent
        segments = base / conf.segments_file if conf.segments_file else None
        tac = base / conf.tac_file if conf.tac_file else None
        province, city, builtin = conf.local_province, conf.local_city, conf.builtin_area_codes
        profile_file = table.get("profiles", {}).get("file")
        profiles = base / profile_file if profile_file else None
    else:
        segments, tac, plan, builtin = args.segments, args.tac, NumberPlan(), True
        province, _, city = args.local.partition("/")
    enrichment = Enrichment(
        segments=load_segments(segments, builtin=builtin) if segments else None,
        tac=load_tac(tac) if tac else None,
        local_province=province,
        local_city=city,
    )
    return enrichment, plan, profiles


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
    parser.add_argument("--enrich", action="store_true", help="add regions and handsets")
    parser.add_argument("--config", type=Path, help="gateway.toml: its [enrichment] tables")
    parser.add_argument("--segments", type=Path, default=ETC / "enrich" / "segments.csv")
    parser.add_argument("--tac", type=Path, default=ETC / "enrich" / "tac.csv")
    parser.add_argument("--local", default="beijing/beijing", help="PROVINCE/CITY")
    parser.add_argument(
        "--profiles",
        type=Path,
        default=ETC / "demo" / "profiles.csv",
        help="BOSS profiles: the MSISDN of an IMSI (signaling events rarely carry one)",
    )
    args = parser.parse_args(argv)
    try:
        args.shard = Shard.parse(args.shard)
    except ValueError as exc:
        parser.error(f"--shard: {exc}")
    describe = event_to_json
    plan = NumberPlan()
    if args.enrich:
        try:
            enrichment, plan, profiles = open_enrichment(args)
            index = load_profiles(profiles) if profiles else None
        except (TableFileError, ConfigError, ProfileFileError) as exc:
            print(f"decode.py: {exc}", file=sys.stderr)
            return 2
        describe = EventDescriber(enrichment, profiles=index).describe
    return decode(args, describe, plan)


def decode(args: argparse.Namespace, describe: Any, plan: NumberPlan) -> int:
    """Decode the captures under ``plan`` (the numbers of the events and of the tables)."""

    async def run() -> int:
        async with use_plan(plan):
            return decode_files(args, describe)

    return trio.run(run)


def decode_files(args: argparse.Namespace, describe: Any) -> int:
    shard = args.shard
    decoder = Decoder(Correlator(home_plmns=tuple(args.home_plmn)))
    out = sys.stdout
    total = 0
    status = 0

    def emit(records: list[dict]) -> None:
        nonlocal total
        events = to_events(records, "pcap", shard)
        total += len(events)
        if not args.quiet:
            out.write("".join(json.dumps(describe(e), ensure_ascii=False) + "\n" for e in events))

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
