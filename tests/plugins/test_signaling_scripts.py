"""scripts/decode.py and the committed demo capture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "etc/demo/sample.pcap"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)


def test_decode_prints_event_lines_then_counters():
    """Each event is a JSON line; the last line holds frames, events and per-layer counters."""
    done = run("scripts/decode.py", str(DEMO), "--home-plmn", "46000")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    *events, summary = lines
    assert summary["events"] == len(events) > 100
    assert summary["errors"] == {} and summary["frames"] > 1000
    kinds = {e["kind"] for e in events}
    assert {"power_on", "call_end", "mo_sms", "roaming_in", "handset_change"} <= kinds
    assert all(e["source"] == "pcap" and "timestamp" in e for e in events)


def test_decode_counts_a_file_that_is_not_a_capture(tmp_path):
    """A non-capture file gives exit status 2 and a pcap.bad_magic count, not a traceback."""
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello" * 20)
    done = run("scripts/decode.py", str(bad), str(DEMO), "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["errors"] == {"pcap.bad_magic": 1} and summary["events"] > 100


def test_demo_capture_is_small_and_reproducible(tmp_path):
    """make_demo_capture.py regenerates the committed sample byte for byte, under 200 KB."""
    out = tmp_path / "sample.pcap"
    done = run("scripts/make_demo_capture.py", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == DEMO.read_bytes()
    assert DEMO.stat().st_size < 200 * 1024


def test_bench_decode_prints_one_json_object_last():
    """bench_decode.py (tiny size) ends with one JSON object with rates per second and mode."""
    done = run("scripts/bench_decode.py", "--quick", "--packets", "3000", "--no-tshark")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["mode"] == "quick" and result["packets"] == 3000
    assert result["decoder"]["packets_per_s"] > 0 and result["decoder"]["decode_errors"] == 0
    assert result["with_signal_events"]["events"] == result["decoder"]["events"] > 0
