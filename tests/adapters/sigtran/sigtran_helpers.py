"""Helpers shared by the sigtran tests: write generated captures, decode files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from adapters.sigtran.correlate import Correlator
from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.scenario import TRANSPORT_LINKTYPE, Scenario, frames, write_pcap, write_pcapng


def _find_captures() -> Path:
    """The real public captures (Wireshark samples) sit in ``shared/`` beside the checkout."""
    if os.environ.get("GATEWAY_CAPTURES"):
        return Path(os.environ["GATEWAY_CAPTURES"])
    beside = Path(__file__).resolve().parents[3].parent / "shared" / "captures"
    return beside if beside.is_dir() else Path("/work/shared/captures")


CAPTURES = _find_captures()
needs_captures = pytest.mark.skipif(not CAPTURES.is_dir(), reason="real captures not available")


def make_capture(
    path: Path,
    transport: str = "m3ua",
    *,
    seed: int = 1,
    procedures: int = 120,
    pcapng: bool = False,
    nanosecond: bool = False,
    big_endian: bool = False,
    **frame_options,
) -> Scenario:
    """Write a capture of a scenario; returns the scenario (messages + expected events)."""
    scenario = Scenario(seed).run(procedures)
    packets = frames(scenario.messages, transport, **frame_options)
    with path.open("wb") as f:
        if pcapng:
            write_pcapng(f, TRANSPORT_LINKTYPE[transport], packets)
        else:
            write_pcap(
                f,
                TRANSPORT_LINKTYPE[transport],
                packets,
                nanosecond=nanosecond,
                big_endian=big_endian,
            )
    return scenario


def decode_file(path: Path, *, trace: list | None = None, home=("46000",), finish: bool = True):
    """``(events, decoder)`` for a whole capture file."""
    decoder = Decoder(Correlator(home_plmns=home), trace=trace)
    events: list[dict] = []
    with path.open("rb") as f:
        fd = FileDecoder(f, decoder)
        while not fd.done:
            events += fd.step(5000)
    if finish:
        events += decoder.finish()
    return events, decoder


def event_counter(events) -> Counter:
    return Counter((e["kind"], e.get("imsi")) for e in events)


def expected_counter(scenario: Scenario) -> Counter:
    return Counter(x for x in scenario.expected if x[0] not in ("seen", "imei"))
