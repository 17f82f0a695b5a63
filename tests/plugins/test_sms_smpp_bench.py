"""scripts/bench_smpp.py against an external SMSC (here the simulator in its own process), and
the standalone simulator's options for the behaviours an operator meets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = [sys.executable, str(ROOT / "scripts" / "smsc_simulator.py"), "--port", "0"]
SIMULATOR += ["--account", "benchid:pw1", "--no-receipts", "--stats-interval", "3600"]
SMALL = ["--messages", "1000", "--cap", "200", "--cap-seconds", "0.5"]
BENCH = [sys.executable, str(ROOT / "scripts" / "bench_smpp.py"), "--quick", "--host", "127.0.0.1"]


def test_bench_targets_an_external_smsc_with_its_credentials():
    """--host/--port/--system-id/--password bind to that SMSC; no bundled simulator is started."""
    sim = subprocess.Popen(
        SIMULATOR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = json.loads(sim.stdout.readline())["port"]
        out = subprocess.run(
            [*BENCH, "--port", str(port), "--system-id", "benchid", "--password", "pw1", *SMALL],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    finally:
        sim.terminate()
        sim.wait(10)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["smsc"] == f"127.0.0.1:{port}" and "simulator_ceiling" not in result
    assert result["window_64"]["messages"] == 1000 and result["window_64"]["failed"] == 0
    assert result["window_64"]["cpu_us_per_message"] > 0
    assert result["through_outbox"]["messages"] == 1000
    assert set(result["codec"]) == {"submit_sm_encode", "deliver_sm_decode"}


def test_bench_refused_credentials_do_not_pass_silently():
    """Wrong credentials for the external SMSC: the bench stops with the bind failure, not hangs."""
    sim = subprocess.Popen(
        SIMULATOR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = json.loads(sim.stdout.readline())["port"]
        proc = subprocess.Popen(
            [*BENCH, "--port", str(port), "--system-id", "benchid", "--password", "wrong"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    finally:
        sim.terminate()
        sim.wait(10)
    assert proc.returncode != 0
    assert "bind refused by 127.0.0.1" in err and "RINVPASWD" in err


def test_standalone_simulator_options_for_operator_behaviour():
    """--max-rate, --queue-full and --no-query-sm reach the simulator's configuration."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import smsc_simulator
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    args = smsc_simulator.parse_args(
        ["--max-rate", "5", "--queue-full", "86139", "--queue-full", "86138:2", "--no-query-sm"]
    )
    config = smsc_simulator.build(args).config
    assert config.max_rate == 5 and config.queue_full == {"86139": -1, "86138": 2}
    assert config.query_sm is False
    assert smsc_simulator.build(smsc_simulator.parse_args([])).config.query_sm is True
