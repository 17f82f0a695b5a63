#!/usr/bin/env python3
"""Print, per campaign, what the demo daemon did: matched, allowed, suppressed, sent, delivered.

Used by scripts/demo.sh once the daemon answers; talks to it through gatewayctl's socket.
Usage: demo_summary.py SOCKET [WAIT_SECONDS]

Waits (up to WAIT_SECONDS, default 20) until every allowed contact has its delivery receipt,
so that the figures printed are the demo's final ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

GATEWAYCTL = str(Path(sys.executable).with_name("gatewayctl"))


def ctl(socket: str, *argv: str) -> dict:
    done = subprocess.run(
        [GATEWAYCTL, "--socket", socket, "--timeout", "5", "--json", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def reports(socket: str) -> dict[str, dict]:
    return {
        c["id"]: ctl(socket, "campaign", "report", c["id"])
        for c in ctl(socket, "campaigns", "list")["campaigns"]
    }


def main() -> int:
    socket = sys.argv[1]
    deadline = time.monotonic() + (float(sys.argv[2]) if len(sys.argv) > 2 else 20.0)
    while True:
        found = reports(socket)
        allowed = sum(r.get("allowed", 0) for r in found.values())
        delivered = sum(r.get("delivered", 0) for r in found.values())
        if (allowed and delivered >= allowed) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for campaign_id, report in found.items():
        figures = "  ".join(
            f"{name} {report.get(name, 0):3}"
            for name in ("matched", "allowed", "suppressed", "sent", "delivered")
        )
        print(f"demo: campaign {campaign_id:24} {figures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
