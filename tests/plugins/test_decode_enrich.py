"""``scripts/decode.py --enrich``: the demo capture's events with regions and handsets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "etc/demo/sample.pcap"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)


def events_of(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    *events, _summary = (json.loads(line) for line in done.stdout.splitlines())
    return events


def test_enrich_shows_regions_long_distance_and_handsets():
    """With the sample tables: the subscriber's home region (MSISDN from the profiles), the
    called number's region and long distance, and the new handset's model and capabilities
    on handset_change."""
    events = events_of(run("scripts/decode.py", str(DEMO), "--enrich"))
    plain = events_of(run("scripts/decode.py", str(DEMO)))
    assert len(events) == len(plain) and all("enriched" not in e for e in plain)
    power_on = next(e for e in events if e["kind"] == "power_on" and e["imsi"].startswith("46000"))
    assert power_on["enriched"] == {
        "home_province": "beijing",
        "home_city": "beijing",
        "visitor": False,
    }
    to_shanghai = [e for e in events if e.get("peer") == "8613812345678"]
    assert {e["kind"] for e in to_shanghai} >= {"call_start", "call_end"}
    assert {e["direction"] for e in to_shanghai} == {"mo", "mt"}
    for e in to_shanghai:
        assert e["enriched"]["peer_city"] == "shanghai"
        # a call the subscriber makes to another city is long distance; one received is not
        assert e["enriched"].get("long_distance", False) is (e["direction"] == "mo")
    service = next(e for e in events if e["kind"] == "call_start" and e.get("peer") == "12580")
    assert "long_distance" not in service["enriched"]
    changes = [e for e in events if e["kind"] == "handset_change"]
    assert changes and all("handset_model" in e["enriched"] for e in changes)
    k750 = next(e for e in changes if e["imei"].startswith("35619206"))
    assert k750["enriched"]["handset_model"] == "k750i"
    assert k750["enriched"]["handset_capabilities"] == ["mms", "wap"]


def test_enrich_reads_the_tables_of_a_gateway_toml(tmp_path):
    """--config takes [enrichment] (relative paths from the file's directory) and [profiles];
    another local region changes visitor and long distance."""
    (tmp_path / "seg.csv").write_text(
        "prefix,province,city\n1380000,beijing,beijing\n1381234,shanghai,shanghai\n"
    )
    (tmp_path / "gateway.toml").write_text(
        f"""
[enrichment]
segments_file = "seg.csv"
local_province = "shanghai"
[profiles]
file = "{ROOT / "etc/demo/profiles.csv"}"
"""
    )
    events = events_of(
        run("scripts/decode.py", str(DEMO), "--enrich", "--config", str(tmp_path / "gateway.toml"))
    )
    power_on = next(e for e in events if e["kind"] == "power_on" and e["imsi"].startswith("46000"))
    assert power_on["enriched"]["visitor"] is True
    call = next(e for e in events if e.get("peer") == "8613812345678")
    assert call["enriched"]["long_distance"] is False
    assert all("handset_model" not in e.get("enriched", {}) for e in events)  # no tac_file


def test_enrich_with_a_bad_table_exits_2_naming_the_line(tmp_path):
    """A bad table is reported with file and line; nothing is decoded."""
    bad = tmp_path / "tac.csv"
    bad.write_text("tac,brand,model,capabilities\n123,x,y,mms\n")
    done = run("scripts/decode.py", str(DEMO), "--enrich", "--tac", str(bad))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{bad}:2: a TAC is 8 ASCII digits" in done.stderr


def test_describer_remembers_the_call_number_and_the_last_imei():
    """A call_end without a number is described with its call_start's; an event without an
    IMEI with the one seen last for the IMSI."""
    from gateway.enrich import Enrichment, load_segments, load_tac
    from gateway.model import EventKind, SignalEvent
    from plugins.signaling.events import EventDescriber

    enrichment = Enrichment(
        segments=load_segments(ROOT / "etc/enrich/segments.csv"),
        tac=load_tac(ROOT / "etc/enrich/tac.csv"),
        local_province="beijing",
        local_city="beijing",
    )
    describe = EventDescriber(enrichment, capacity=2).describe
    imsi = "460001234567801"
    start = SignalEvent(kind=EventKind.CALL_START, timestamp=1, imsi=imsi, peer="02112345678")
    seen = SignalEvent(kind=EventKind.CELL_CHANGE, timestamp=2, imsi=imsi, imei="356938031234567")
    end = SignalEvent(kind=EventKind.CALL_END, timestamp=3, imsi=imsi)
    describe(start), describe(seen)
    enriched = describe(end)["enriched"]
    assert enriched["peer_city"] == "shanghai" and enriched["long_distance"] is True
    assert enriched["handset_model"] == "n95"
    for n in range(3):  # bounded: older IMSIs are forgotten
        describe(
            SignalEvent(
                kind=EventKind.CELL_CHANGE, timestamp=4, imsi=f"4600{n}", imei="356938031234567"
            )
        )
    assert "handset_model" not in describe(end).get("enriched", {})
