"""End to end with a real gatewayd: campaign files loaded at start, SIGHUP reload, admin
commands and a preview over the control socket."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from gateway.campaigns.preview import event_line
from gateway.model import EventKind, SignalEvent

ROOT = Path(__file__).resolve().parents[3]
CAMPAIGN = """id = "{id}"
name = "welcome back {id}"
channels = ["sms"]
initial_state = "running"
[content.sms]
text = "Welcome back, {{brand|customer}}"
[trigger]
events = ["power_on"]
"""


def test_campaigns_load_reload_on_sighup_and_preview(short_tmp, gateway_config, gatewayd):
    """gatewayd loads campaign files and profiles, SIGHUP picks up a new file, preview works."""
    campaigns = short_tmp / "campaigns"
    campaigns.mkdir()
    (campaigns / "a.toml").write_text(CAMPAIGN.format(id="a"))
    shutil.copy(ROOT / "etc" / "areas.toml", short_tmp / "areas.toml")
    shutil.copy(ROOT / "etc" / "demo" / "profiles.csv", short_tmp / "profiles.csv")
    config = gateway_config(
        f"""
        [campaigns]
        directory = "{campaigns}"
        areas_file = "{short_tmp / "areas.toml"}"

        [profiles]
        file = "{short_tmp / "profiles.csv"}"
        """
    )
    proc = gatewayd(config)
    status = proc.wait_ready()
    assert status["plugins"]["gateway.campaigns.plugin"]["status"]["running"] == ["a"]
    listed = proc.request("campaigns", "list")["data"]["campaigns"]
    assert [(c["id"], c["state"]) for c in listed] == [("a", "running")]

    (campaigns / "b.toml").write_text(CAMPAIGN.format(id="b"))
    proc.signal(signal.SIGHUP)
    proc.wait_for_event("campaigns.loaded", count=2)
    listed = proc.request("campaigns", "list")["data"]["campaigns"]
    assert [c["id"] for c in listed] == ["a", "b"]

    events = short_tmp / "events.jsonl"
    events.write_text(
        "\n".join(
            event_line(
                SignalEvent(
                    kind=EventKind.POWER_ON,
                    timestamp=1_772_000_000.0 + i,
                    imsi=f"46000123456780{i}",
                )
            )
            for i in range(1, 6)
        )
    )
    preview = proc.request("preview", "b", "--events", str(events))
    assert preview["ok"], preview
    assert preview["data"]["events_read"] == 5 and preview["data"]["would_allow"] == 5
    assert proc.request("campaigns", "pause", "b", "--by", "ops")["data"]["state"] == "paused"
    report = proc.request("campaign", "report", "b")
    assert report["ok"] and report["data"]["state"] == "paused" and report["data"]["matched"] == 0
    bad = proc.request("campaigns", "resume", "zzz")
    assert not bad["ok"] and "no campaign 'zzz'" in bad["error"]
