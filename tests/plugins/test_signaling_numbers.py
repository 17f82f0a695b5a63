"""Signaling is an entrance of MSISDNs: decoded records and XDR lines get the one E.164 form."""

from __future__ import annotations

import pytest

from plugins.signaling.config import Shard
from plugins.signaling.events import signal_msisdn, to_events
from plugins.signaling.xdr import BadRecord, XdrParser, parse_xdr_config

LAYOUT = {
    "columns": ["time", "imsi", "msisdn", "event"],
    "delimiter": "|",
    "event_codes": {"1": "power_on"},
}


def test_decoded_records_are_normalised_or_lose_the_number():
    """A national MSISDN from the decoder becomes E.164; one that is not a number is dropped."""
    records = [
        {"kind": "power_on", "timestamp": 1.0, "imsi": "460001234567890", "msisdn": "013500000001"},
        {"kind": "power_on", "timestamp": 2.0, "imsi": "460001234567891", "msisdn": "\uff11" * 11},
    ]
    events = to_events(records, "test", Shard())
    assert [e.msisdn for e in events] == ["8613500000001", None]
    assert events[1].imsi == "460001234567891"


def test_xdr_msisdn_is_normalised_and_a_bad_one_refuses_the_record():
    """An XDR MSISDN in any accepted form is stored as E.164; a bad one is a bad_msisdn record."""
    parser = XdrParser(parse_xdr_config(LAYOUT, "plugins.signaling_xdr"), "xdr")
    for form in ("13500000001", "+86 135 0000 0001", "0086-135-0000-0001"):
        assert parser.parse(f"1767225600|460001234567890|{form}|1").msisdn == "8613500000001"
    with pytest.raises(BadRecord) as info:
        parser.parse("1767225600|460001234567890|135abc|1")
    assert info.value.reason == "bad_msisdn"


def test_signal_msisdn_none_for_empty():
    """An absent number stays absent."""
    assert signal_msisdn(None) is None and signal_msisdn("") is None
