"""The signaling plugins inside a real gatewayd: files decoded, counters in ``status``."""

from __future__ import annotations

import shutil
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "etc/demo/sample.pcap"


def test_pcap_directory_source_runs_in_the_daemon_and_reports_status(
    gateway_config, gatewayd, short_tmp
):
    """A capture dropped in the spool is decoded by gatewayd; status shows frames and counters."""
    spool = short_tmp / "spool"
    spool.mkdir()
    (spool / "garbage.pcap").write_bytes(b"not a capture at all" * 4)
    shutil.copy(DEMO, spool / "sample.pcap")
    config = gateway_config(
        f"""
        [plugins.signaling_pcap]
        directory = "{spool}"
        settle = 0
        poll_interval = "50ms"
        home_plmns = ["46000"]
        """
    )
    proc = gatewayd(config)
    proc.wait_ready()
    proc.wait_for_event("signaling.file_done", count=2, timeout=30)
    status = proc.request("status")["data"]
    plugin = status["plugins"]["signaling_pcap"]
    assert plugin["state"] == "running"
    fragment = plugin["status"]
    assert fragment["frames"] > 1000 and fragment["events"] > 100
    assert fragment["errors"] == {"pcap.bad_magic": 1}
    assert sorted(p.name for p in (spool / "done").iterdir()) == ["garbage.pcap", "sample.pcap"]
