"""The same scenario decodes to the same events over every link, transport and file format."""

from __future__ import annotations

import pytest
from sigtran_helpers import decode_file, event_counter, expected_counter, make_capture

TRANSPORTS = [
    ("m3ua", {}),
    ("m3ua", {"bundle": True}),
    ("m3ua_vlan", {"sctp_fragment": 40}),
    ("m3ua", {"ip_fragment": 56}),
    ("m3ua_ipv6", {"bundle": True}),
    ("sll", {}),
    ("sll2", {}),
    ("raw", {}),
    ("m2pa", {"bundle": True}),
    ("mtp2", {}),
    ("mtp2_phdr", {}),
    ("mtp3", {}),
]


@pytest.mark.parametrize(("transport", "options"), TRANSPORTS)
def test_scenario_events_come_out_over_every_transport(tmp_path, transport, options):
    """Each procedure's events (power on, LU, calls, SMS, handover...) are found, nothing more."""
    path = tmp_path / "c.pcap"
    scenario = make_capture(path, transport, seed=11, procedures=150, **options)
    events, decoder = decode_file(path)
    assert decoder.errors == {}
    assert event_counter(events) == expected_counter(scenario)


@pytest.mark.parametrize(
    "fmt",
    [
        {"pcapng": True},
        {"nanosecond": True},
        {"big_endian": True},
        {"nanosecond": True, "big_endian": True},
    ],
)
def test_file_formats_give_identical_events_and_timestamps(tmp_path, fmt):
    """pcapng, nanosecond and big-endian pcap give the same events, timestamps to the microsecond."""
    make_capture(tmp_path / "a.pcap", seed=5, procedures=60)
    make_capture(tmp_path / "b.pcap", seed=5, procedures=60, **fmt)
    a, _ = decode_file(tmp_path / "a.pcap")
    b, _ = decode_file(tmp_path / "b.pcap")
    assert len(a) == len(b) > 50
    for x, y in zip(a, b, strict=True):
        for key in ("timestamp", "duration"):
            assert x.get(key) == pytest.approx(y.get(key), abs=2e-6)
        exact = lambda e: {k: v for k, v in e.items() if k not in ("timestamp", "duration")}  # noqa: E731
        assert exact(x) == exact(y)


def test_every_event_kind_is_produced(tmp_path):
    """The generated traffic exercises every event kind the decoder can emit."""
    make_capture(tmp_path / "a.pcap", seed=2, procedures=400)
    events, _ = decode_file(tmp_path / "a.pcap")
    kinds = {e["kind"] for e in events}
    assert kinds == {
        "power_on",
        "power_off",
        "location_update",
        "periodic_update",
        "cell_change",
        "handover",
        "call_start",
        "call_end",
        "mo_sms",
        "handset_change",
        "roaming_in",
    }


def test_events_carry_identity_cell_and_numbers(tmp_path):
    """Events name the IMSI, TMSI, cell (MCC/MNC/LAC/CI), peer numbers, cause and duration."""
    make_capture(tmp_path / "a.pcap", seed=2, procedures=200)
    events, _ = decode_file(tmp_path / "a.pcap")
    by_kind = {}
    for e in events:
        by_kind.setdefault(e["kind"], e)
    on = by_kind["power_on"]
    assert on["imsi"].isdigit() and len(on["imsi"]) == 15
    assert on["mcc"] == "460" and on["mnc"] == "00" and on["lac"] in (0x1001, 0x1002, 0x2001)
    assert isinstance(on["ci"], int) and isinstance(on["tmsi"], int)
    assert by_kind["call_start"]["peer"] in ("12580", "10086", "8613900001111", "8613812345678")
    end = by_kind["call_end"]
    assert end["cause"] == 16 and end["duration"] >= 5.0
    assert by_kind["mo_sms"]["peer"] in ("10086", "8613900002222", "106575")
    change = by_kind["handset_change"]
    assert len(change["imei"]) == 15 and change["previous_imei"] != change["imei"]
    assert not by_kind["roaming_in"]["imsi"].startswith("46000")
