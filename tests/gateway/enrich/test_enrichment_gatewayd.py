"""The [enrichment] section and ``gatewayctl enrichment`` against a real gatewayd."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gateway.enrich.plugin import parse_enrichment_config
from gateway.errors import ConfigError
from tests.fakes.daemon_process import run_ctl

ETC = Path(__file__).resolve().parents[3] / "etc" / "enrich"


def test_section_is_strict():
    """Unknown keys are refused; segments without a local province is refused (visitor and
    long_distance would compare with nothing)."""
    with pytest.raises(ConfigError, match=r"enrichment\.segment_file"):
        parse_enrichment_config({"segment_file": "x.csv"})
    with pytest.raises(ConfigError, match=r"enrichment\.local_province: needed with segments_file"):
        parse_enrichment_config({"segments_file": "x.csv"})
    with pytest.raises(ConfigError, match=r"enrichment\.local_city: needs local_province"):
        parse_enrichment_config({"local_city": "beijing"})
    config = parse_enrichment_config({"segments_file": "s.csv", "local_province": "beijing"})
    assert config.builtin_area_codes and config.local_city == ""


def test_gatewayctl_enrichment_show_lookup_and_reload(short_tmp, gateway_config, gatewayd):
    """The daemon loads both tables at start; lookups answer from them; a bad file on reload
    exits 1 naming file and line and keeps the table; a fixed file is taken on SIGHUP reload."""
    segments = short_tmp / "segments.csv"
    segments.write_bytes((ETC / "segments.csv").read_bytes())
    config = gateway_config(
        f"""
[enrichment]
segments_file = "{segments}"
tac_file = "{ETC / "tac.csv"}"
local_province = "beijing"
local_city = "beijing"
"""
    )
    proc = gatewayd(config)
    proc.wait_ready()
    ctl = ["--socket", str(proc.socket_path)]

    show = run_ctl(*ctl, "--json", "enrichment", "show")
    assert show.returncode == 0, show.stderr
    stats = json.loads(show.stdout)
    assert stats["segments"]["segments"] == 17 and stats["tac"]["tacs"] == 10
    assert stats["local"] == {"province": "beijing", "city": "beijing"}

    number = run_ctl(*ctl, "enrichment", "number", "139 2100 1234")
    assert number.returncode == 0 and "shanghai / shanghai" in number.stdout
    imei = run_ctl(*ctl, "enrichment", "imei", "356938031234567")
    assert imei.returncode == 0 and "nokia n95: 3g, mms, wap" in imei.stdout
    assert "unknown TAC" in run_ctl(*ctl, "enrichment", "imei", "999999991234567").stdout

    segments.write_text("prefix,province,city\n1390100,beijing,beijing\n139210,sh,sh\n")
    os.utime(segments, ns=(1, 1))
    bad = run_ctl(*ctl, "enrichment", "reload")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert f"{segments}:3: a number segment has 7 digits" in bad.stderr
    assert "shanghai" in run_ctl(*ctl, "enrichment", "number", "13921001234").stdout

    segments.write_text("prefix,province,city\n1390100,beijing,beijing\n1392100,sh,pudong\n")
    os.utime(segments, ns=(2, 2))
    assert run_ctl(*ctl, "reload").returncode == 0  # the SIGHUP path
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = run_ctl(*ctl, "enrichment", "number", "13921001234").stdout
        if "sh / pudong" in answer:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the reload did not take the fixed file: {answer!r}")
    status = run_ctl(*ctl, "--json", "enrichment", "show")
    assert json.loads(status.stdout)["segments"]["last_error"] is None


def test_preview_in_gatewayd_uses_the_tables(short_tmp, gateway_config, gatewayd):
    """`gatewayctl preview` of the visitor and long-distance examples in a real gatewayd matches
    through the loaded tables: one Shanghai visitor, one call to Shanghai (by a subscriber
    with a profile: the example needs one for lacks_product)."""
    campaigns = short_tmp / "campaigns"
    campaigns.mkdir()
    for name in ("visitor_welcome.toml", "long_distance_12593.toml"):
        (campaigns / name).write_bytes((ETC.parent / "campaigns" / name).read_bytes())
    events = short_tmp / "events.jsonl"
    t = 1_772_416_800.0  # 2026-03-02 10:00 Beijing
    lines = [
        {"kind": "power_on", "timestamp": t, "imsi": "460009999999991", "msisdn": "8613921001234"},
        {"kind": "power_on", "timestamp": t, "imsi": "460009999999992", "msisdn": "8613901001234"},
        {
            "kind": "call_start",
            "timestamp": t,
            "imsi": "460009999999992",
            "msisdn": "8613901001234",
            "peer": "02112345678",
            "direction": "mo",
        },
        {
            "kind": "call_end",
            "timestamp": t + 60,
            "imsi": "460009999999992",
            "msisdn": "8613901001234",
            "direction": "mo",
            "outcome": "answered",
            "duration": 60.0,
        },
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    profiles = short_tmp / "profiles.csv"
    profiles.write_text("msisdn,imsi,products\n8613901001234,460009999999992,music\n")
    config = gateway_config(
        f"""
[campaigns]
directory = "{campaigns}"
[profiles]
file = "{profiles}"
[enrichment]
segments_file = "{ETC / "segments.csv"}"
tac_file = "{ETC / "tac.csv"}"
local_province = "beijing"
local_city = "beijing"
"""
    )
    proc = gatewayd(config)
    proc.wait_ready()
    ctl = ["--socket", str(proc.socket_path), "--json"]
    for campaign in ("visitor-welcome", "long-distance-12593"):
        done = run_ctl(*ctl, "preview", campaign, "--events", str(events))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["contact_requests"] == 1, (campaign, result)
        assert result["distinct_subscribers"] == 1, (campaign, result)


async def test_the_daemons_pipeline_reads_the_tables(tmp_path):
    """In a running daemon the enrichment component opens before the pipeline, which matches
    the visitor example through the segments loaded from a path relative to gateway.toml."""
    from gateway.model import EventKind, SignalEvent
    from gateway.testing.gateway import open_gateway

    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    name = "visitor_welcome.toml"
    (campaigns / name).write_bytes((ETC.parent / "campaigns" / name).read_bytes())
    tables = tmp_path / "gw" / "tables"
    tables.mkdir(parents=True)
    (tables / "segments.csv").write_bytes((ETC / "segments.csv").read_bytes())
    extra = f"""
[campaigns]
directory = "{campaigns}"
[enrichment]
segments_file = "tables/segments.csv"  # relative to gateway.toml
local_province = "beijing"
"""
    async with open_gateway(tmp_path / "gw", extra) as handle:
        gateway = handle.gateway
        assert gateway.enrichment is not None and gateway.pipeline.enrichment is gateway.enrichment
        visitor = SignalEvent(
            kind=EventKind.POWER_ON,
            timestamp=1_772_416_800.0,
            imsi="4600099",
            msisdn="8613921001234",
        )
        local = SignalEvent(
            kind=EventKind.POWER_ON,
            timestamp=1_772_416_800.0,
            imsi="4600098",
            msisdn="8613901001234",
        )
        requests = gateway.pipeline.match_batch([visitor, local])
        assert [r.msisdn for r in requests] == ["8613921001234"]
        reply = await handle.command("enrichment", "show")
        assert reply.data["segments"]["segments"] == 17 and reply.data["tac"]["tacs"] == 0
