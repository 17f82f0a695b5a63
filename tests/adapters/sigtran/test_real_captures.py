"""Real public captures (Wireshark samples): decoded without exceptions, unknowns counted."""

from __future__ import annotations

import pytest
from sigtran_helpers import CAPTURES, decode_file, needs_captures

pytestmark = needs_captures


@pytest.mark.parametrize(
    "name", ["gsm-r.uus1.pcap", "3gpp_mc.cap", "iucs-mo-call-amr.pcap", "iucs-mt-call-amr.pcap"]
)
def test_real_capture_decodes_without_errors(name):
    """Every frame is accounted for: decoded, or skipped with a layer and reason."""
    events, decoder = decode_file(CAPTURES / name)
    assert decoder.frames > 0
    assert decoder.errors == {}
    assert all(e.get("imsi") or e.get("tmsi") is not None for e in events)
    if name != "gsm-r.uus1.pcap":  # its calls began before the capture: no identity
        assert any(e["kind"] == "call_start" for e in events)


@pytest.mark.parametrize("name", ["iucs-mo-call-amr.pcap", "iucs-mt-call-amr.pcap"])
def test_iu_cs_calls_come_out_of_ranap(name):
    """Iu-CS (3G): the DTAP inside RANAP gives the call with IMSI, LAC, SAC, cause and duration."""
    events, _ = decode_file(CAPTURES / name)
    start, end = (e for e in events if e["kind"] in ("call_start", "call_end"))
    assert start["imsi"] == end["imsi"] and start["imsi"].startswith("1234567800")
    assert (start["mcc"], start["mnc"], start["lac"], start["ci"]) == ("261", "01", 0x4001, 33173)
    assert end["cause"] == 16 and 10 < end["duration"] < 11


def test_gsm_r_calls_without_a_subscriber_are_counted_not_emitted():
    """The capture's CC Setups sit on connections whose subscriber never appears: counted only."""
    events, decoder = decode_file(CAPTURES / "gsm-r.uus1.pcap")
    assert events == []
    assert decoder.skipped[("correlation", "no_identity")] == 3
    assert decoder.skipped[("correlation", "call_start_not_seen")] == 1
    assert decoder.messages == 9


def test_3gpp_mc_every_call_ends_once():
    """Issue 11 defect 3: clearings of calls begun before the capture end nothing; one end each."""
    events, decoder = decode_file(CAPTURES / "3gpp_mc.cap")
    ends = [e for e in events if e["kind"] == "call_end"]
    starts = [e for e in events if e["kind"] == "call_start"]
    assert all(e.get("imsi") for e in ends)
    assert sorted(e["imsi"] for e in ends) == sorted(e["imsi"] for e in starts)
    assert decoder.skipped[("correlation", "call_start_not_seen")] == 30
