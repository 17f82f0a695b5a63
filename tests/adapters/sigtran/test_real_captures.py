"""Real public captures (Wireshark samples): decoded without exceptions, unknowns counted."""

from __future__ import annotations

import pytest
from sigtran_helpers import CAPTURES, decode_file


@pytest.mark.parametrize(
    "name", ["gsm-r.uus1.pcap", "3gpp_mc.cap", "iucs-mo-call-amr.pcap", "iucs-mt-call-amr.pcap"]
)
def test_real_capture_decodes_without_errors(name):
    """Every frame is accounted for: decoded, or skipped with a layer and reason."""
    events, decoder = decode_file(CAPTURES / name)
    assert decoder.frames > 0
    assert decoder.errors == {}
    if name.startswith("iucs") or name == "3gpp_mc.cap":
        # Iu-CS: RANAP on SCCP is recognised and skipped, not mistaken for BSSAP
        assert decoder.skipped.get(("sccp", "not_bssap_subsystem"), 0) > 10
        assert events == []


def test_gsm_r_capture_gives_call_events():
    """The A-interface capture's CC Setup / Release Complete become call start and end events."""
    events, decoder = decode_file(CAPTURES / "gsm-r.uus1.pcap")
    starts = [e for e in events if e["kind"] == "call_start"]
    assert {e["peer"] for e in starts} == {"20005502", "1612"}
    assert any(e["kind"] == "call_end" for e in events)
    assert decoder.messages == 9
