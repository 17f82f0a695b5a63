"""Supplementary services (adapters/sigtran/ss.py) against pycrate's encoders, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sigtran import ss
from adapters.sigtran.outcome import call_outcome

pycrate_sms = pytest.importorskip("pycrate_mobile.TS23038", reason="pycrate not installed")
pycrate_ss = pytest.importorskip("pycrate_asn1dir.SS", reason="pycrate not installed")

# the characters of the GSM 7-bit default alphabet, as text (the escape 0x1B excluded)
GSM7_TEXT = st.text(alphabet=[c for c in ss.GSM7 if c != "\x1b"], min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(GSM7_TEXT)
def test_ussd_strings_packed_by_pycrate_read_back(text):
    """Any default-alphabet USSD string pycrate packs (7-bit, CR pad) reads back as written."""
    packed, _ = pycrate_sms.encode_7b(text)
    if text.endswith("\r") and len(packed) * 8 % 7 == 0:
        return  # a trailing CR in the last septet is the pad by definition (TS 23.038 6.1.2.3.1)
    assert ss.ussd_text(0x0F, packed) == text


@pytest.mark.parametrize(
    ("op", "arg", "expected"),
    [
        (59, None, {"ss_op": 59, "ussd": "*139#"}),
        (10, ("RegisterSS-Arg", {"ss-Code": b"\x21", "forwardedToNumber": b"\x91\x68\x31"}), {}),
        (12, ("SS-ForBS-Code", {"ss-Code": b"\x92"}), {}),
        (13, ("SS-ForBS-Code", {"ss-Code": b"\x2a"}), {}),
    ],
)
def test_facility_invokes_encoded_by_pycrate(op, arg, expected):
    """The Invoke of a pycrate-encoded Facility gives the operation, SS-Code or USSD string."""
    fac = pycrate_ss.SS_Facility.Facility
    if arg is None:
        packed, _ = pycrate_sms.encode_7b("*139#")
        arg = ("USSD-Arg", {"ussd-DataCodingScheme": b"\x0f", "ussd-String": packed})
    fac.set_val(("invoke", {"invokeID": 7, "operationCode": ("local", op), "parameters": arg}))
    msg: dict = {}
    ss.facility(fac.to_ber(), msg)
    assert msg["ss_op"] == op
    if expected:
        assert msg == expected
    else:
        assert msg["ss_code"] == arg[1]["ss-Code"][0]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_random_facilities_parse_or_raise_value_error(data):
    """Any bytes as a Facility either decode or raise ValueError/IndexError (counted upstream)."""
    try:
        ss.facility(data, {})
    except (ValueError, IndexError):
        pass


@pytest.mark.parametrize(
    ("answered", "cause", "mt", "outcome"),
    [
        (True, 16, False, "answered"),
        (True, None, True, "answered"),
        (False, 17, True, "rejected"),
        (False, 21, True, "rejected"),
        (False, 17, False, "busy"),
        (False, 19, True, "no_answer"),
        (False, 16, True, "no_answer"),
        (False, 1, False, "unallocated_number"),
        (False, 34, False, "network_failure"),
        (False, None, False, "network_failure"),
    ],
)
def test_call_outcome_table(answered, cause, mt, outcome):
    """The documented TS 24.008 cause mapping (adapters/sigtran/outcome.py)."""
    assert call_outcome(answered=answered, cause=cause, mobile_terminated=mt) == outcome
