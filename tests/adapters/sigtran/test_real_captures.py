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
    assert any(e["kind"] == "call_start" for e in events)


@pytest.mark.parametrize("name", ["iucs-mo-call-amr.pcap", "iucs-mt-call-amr.pcap"])
def test_iu_cs_calls_come_out_of_ranap(name):
    """Iu-CS (3G): the DTAP inside RANAP gives the call with IMSI, LAC, SAC, cause and duration."""
    events, _ = decode_file(CAPTURES / name)
    start, end = (e for e in events if e["kind"] in ("call_start", "call_end"))
    assert start["imsi"] == end["imsi"] and start["imsi"].startswith("1234567800")
    assert (start["mcc"], start["mnc"], start["lac"], start["ci"]) == ("261", "01", 0x4001, 33173)
    assert end["cause"] == 16 and 10 < end["duration"] < 11


def test_gsm_r_capture_gives_call_events():
    """The A-interface capture's CC Setup / Release Complete become call start and end events."""
    events, decoder = decode_file(CAPTURES / "gsm-r.uus1.pcap")
    starts = [e for e in events if e["kind"] == "call_start"]
    assert {e["peer"] for e in starts} == {"20005502", "1612"}
    assert any(e["kind"] == "call_end" for e in events)
    assert decoder.messages == 9
