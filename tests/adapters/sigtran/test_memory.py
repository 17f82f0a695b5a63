"""Constant memory: peak RSS does not grow with the capture size (10 MB vs 100 MB)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from adapters.sigtran.pcap import pcap_record, write_pcap_header
from adapters.sigtran.scenario import Scenario, frames

ROOT = Path(__file__).resolve().parents[3]

DECODE = textwrap.dedent("""
    import resource, sys
    from adapters.sigtran.decoder import Decoder, FileDecoder
    d = Decoder()
    with open(sys.argv[1], "rb") as f:
        fd = FileDecoder(f, d)
        n = 0
        while not fd.done:
            n += len(fd.step(50_000))
    print(d.frames, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def write_capture(path: Path, size: int) -> None:
    """Repeat one block of scenario frames, shifted in time, until ``size`` bytes."""
    scenario = Scenario(seed=4, subscribers=300).run(300)
    block = list(frames(scenario.messages, "m3ua"))
    span = block[-1][0] - block[0][0] + 1
    with path.open("wb") as f:
        f.write(write_pcap_header(1))
        written, shift = 24, 0.0
        while written < size:
            data = b"".join(pcap_record(ts + shift, frame) for ts, frame in block)
            f.write(data)
            written += len(data)
            shift += span


def peak_rss_kb(path: Path) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", DECODE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def test_peak_rss_is_flat_from_10_to_100_mb(tmp_path):
    """Decoding 100 MB needs no more memory than 10 MB (within 10 MB of slack)."""
    small, big = tmp_path / "10.pcap", tmp_path / "100.pcap"
    write_capture(small, 10 << 20)
    write_capture(big, 100 << 20)
    frames_small, events_small, rss_small = peak_rss_kb(small)
    frames_big, events_big, rss_big = peak_rss_kb(big)
    big.unlink()
    assert frames_big > 8 * frames_small and events_big > 8 * events_small
    assert rss_big - rss_small < 10 * 1024, (rss_small, rss_big)
